"""DynamoDB exports in S3: their manifests, their verified data files, and finding or starting one."""
