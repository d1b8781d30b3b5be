//! The drive log (`<DriveLog>`): the error and verbose logs of a drive copy.
