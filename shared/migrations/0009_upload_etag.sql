-- The version of the contact file that was inspected. Its upload form stays valid for a while, so
-- the file could be replaced afterwards; every later read asks S3 for this version (If-Match).
ALTER TABLE uploads ADD COLUMN etag text;
