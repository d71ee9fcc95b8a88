//! Ports (under construction).
