//! DynamoDB stores (feature `dynamodb`).
