"""composer-s3-mirror: mirror Composer v2 repositories into an S3 bucket."""
