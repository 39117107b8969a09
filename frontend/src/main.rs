//! The lab page's entry point.

mod api;
mod app;
mod components;
mod describe;
mod store;
#[cfg(test)]
mod tests;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
