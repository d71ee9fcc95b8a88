//! The integration tests of `optisync-e2e`, one module per file, linked as one test binary (one link on
//! two cores instead of one per file).

mod admin;
mod delivery;
mod erasure;
mod esp_to_optigem;
mod optigem_to_esp;
mod privacy;
mod safety_net;
mod scheduled_run;
mod settings;
mod subjects;
mod webhook_storm;
