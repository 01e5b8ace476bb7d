"""Running a results folder's queue: requests, the supervisor's poll loop, device slots, job processes, the writer lock."""
