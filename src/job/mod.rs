//! The Import/Export job and drive state machines. Pure: no I/O.
