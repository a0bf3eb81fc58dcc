//! The fault-injection simulator and evaluation suite.
