"""Every change to user-visible data: check_* validates, do_* writes and queues its events."""
