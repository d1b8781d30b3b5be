//! Property tests of the job state machines.
