"""Campaigns: drafts (editing), states (the life cycle), preview, progress."""
