//! The lab page's entry point.

mod api;
mod app;
mod fs;
mod net;
mod store;
mod term;
#[cfg(test)]
mod tests;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
