"""A typed async client for RunPod Serverless' job API (a leaf: imports none of the bot's packages)."""
