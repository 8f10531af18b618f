"""Rules for attention layers."""
