"""Provider Protocols (what phases may ask of the world) and their adapters: aws/ (boto3) and lab/."""
