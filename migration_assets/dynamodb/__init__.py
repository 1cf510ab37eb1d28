"""DynamoDB export-to-S3 layouts: keys, manifests and their verification."""
