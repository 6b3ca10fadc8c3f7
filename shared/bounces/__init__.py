"""Bounces: recognising the delivery failure and delay reports that come back to a sender's mailbox."""
