"""boto3 adapters for the provider Protocols. Each module translates botocore errors at its edge
(see clients.py); import adapters from their modules, e.g. `global_database.AwsGlobalDatabase`."""
