"""Checkers of guarantees that span processes, run over recorded histories (DESIGN §7): each takes
what happened (every operation's start, end and result) and the final state, and lists violations."""
