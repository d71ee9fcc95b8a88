//! Use cases (under construction).
