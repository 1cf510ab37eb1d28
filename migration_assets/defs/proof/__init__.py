"""The migration's proof for sign-off: one report over every day and every hop."""
