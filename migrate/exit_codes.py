"""Process exit codes, shared by every command (like `terraform plan -detailed-exitcode`)."""

OK = 0  # success, or for `plan`: nothing to do
ERROR = 1  # any failure: bad input, refused operation, failed step
CHANGES_PENDING = 2  # `plan` only: the plan has work to do
ABORTED = 3  # an operator abort stopped the run and its rollback completed
PAUSED_FOR_HUMAN = 4  # a gate was inconclusive; the run waits for `migrate resume`
