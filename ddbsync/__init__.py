"""ddbsync: keep Amazon Aurora PostgreSQL in step with Amazon DynamoDB."""
