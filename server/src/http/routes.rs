//! The route registry: every route of the app is added through `Routes`, which hands it to
//! actix and writes down its method and path. The router is built from `register`, and
//! `table` replays the same registration without a router, so the authorization matrix test
//! walks exactly the routes the server serves: a new route without a row fails it.

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Responder, web};

pub struct Routes<'a> {
    /// Absent when only the table is wanted.
    cfg: Option<&'a mut web::ServiceConfig>,
    table: Vec<(Method, &'static str)>,
}

macro_rules! method {
    ($name:ident, $method:ident, $route:ident) => {
        pub fn $name<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
        where
            F: Handler<Args>,
            Args: FromRequest + 'static,
            F::Output: Responder + 'static,
        {
            self.add(Method::$method, path, web::$route().to(handler))
        }
    };
}

impl<'a> Routes<'a> {
    fn add(&mut self, method: Method, path: &'static str, route: actix_web::Route) -> &mut Self {
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.route(path, route);
        }
        self.table.push((method, path));
        self
    }

    method!(get, GET, get);
    method!(post, POST, post);
    method!(put, PUT, put);
    method!(patch, PATCH, patch);
    method!(delete, DELETE, delete);
}

/// Every route, in the order they are matched.
fn register(r: &mut Routes) {
    r.get("/livez", super::health::livez)
        .get("/readyz", super::health::readyz)
        .get("/metrics", super::metrics::endpoint);
    super::assets::routes(r);
    super::api::chat::routes(r);
    super::api::audit::routes(r);
    super::ui::audit::routes(r);
    super::api::backup::routes(r);
    super::api::sso::routes(r);
    super::ui::sso::routes(r);
    super::oidc::routes(r);
    super::v1::routes(r);
    super::api::keys::routes(r);
    super::ui::keys::routes(r);
    super::api::providers::routes(r);
    super::ui::providers::routes(r);
    super::api::knowledge::routes(r);
    super::ui::knowledge::routes(r);
    super::api::assistants::routes(r);
    super::api::routes(r);
    super::sign_in::routes(r);
    super::ui::routes(r);
}

/// Adds every route to the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut routes = Routes { cfg: Some(cfg), table: Vec::new() };
    register(&mut routes);
}

/// Every route's method and path pattern (`/api/collections/{name}`), in the order they are
/// matched.
pub fn table() -> Vec<(Method, &'static str)> {
    let mut routes = Routes { cfg: None, table: Vec::new() };
    register(&mut routes);
    routes.table
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_route_is_registered_once() {
        let table = super::table();
        let mut seen = std::collections::BTreeSet::new();
        for (method, path) in &table {
            assert!(seen.insert((method.to_string(), *path)), "{method} {path} twice");
        }
        assert!(table.len() > 100, "{}", table.len());
    }
}
