"""Procedural reasoning tasks with exact step checkers."""
