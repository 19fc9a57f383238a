"""Publisher: posts, approvals, schedules, and publishing to networks exactly once."""
