"""Scheduled retraining: has anything changed since the last model was trained?"""
