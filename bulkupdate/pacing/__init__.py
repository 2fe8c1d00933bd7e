"""Pacing: the shared token bucket, the adaptive controller that moves its rate on accepts and
throttles, the rate gate workers pass, and the retry decisions after a failed call.

Decisions are pure; only `gate` sleeps, through the injected Clock. May import the core only.
"""
