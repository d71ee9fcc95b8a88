//! Brevo adapter: API client, webhook intake and a stateful fake server.
