"""The DynamoDB Streams flow outside Lambda's own delivery: records as Lambda shapes them, re-drive."""
