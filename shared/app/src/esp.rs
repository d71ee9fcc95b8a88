//! ESP webhooks → inbox (being written).
