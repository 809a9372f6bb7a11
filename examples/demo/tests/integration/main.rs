//! The demo's tests: every page and handler over real WebSockets, the
//! Redis layer across two processes, and every page in headless Chromium.

mod alerts;
mod binary;
mod browser;
mod browser_uploads;
mod login;
mod pages;
mod presence;
mod redis;
mod search;
mod security;
mod snake;
mod support;
