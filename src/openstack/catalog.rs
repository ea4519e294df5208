//! The service catalog of a Keystone token (v3 `token.catalog` or v2.0
//! `access.serviceCatalog`), looked up by service type, interface and region.

use std::collections::BTreeSet;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub interface: String,
    pub region: Option<String>,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub kind: String,
    pub name: String,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub services: Vec<Service>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Catalog {
    /// A v3 `token.catalog` array.
    pub fn from_v3(catalog: &Value) -> Catalog {
        let services = catalog.as_array().into_iter().flatten().map(|s| Service {
            kind: text(s, "type").unwrap_or_default(),
            name: text(s, "name").unwrap_or_default(),
            endpoints: s["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some(Endpoint {
                        interface: text(e, "interface")?,
                        region: text(e, "region_id").or_else(|| text(e, "region")),
                        url: text(e, "url")?,
                    })
                })
                .collect(),
        });
        Catalog {
            services: services.collect(),
        }
    }

    /// A v2.0 `access.serviceCatalog` array: each endpoint holds one URL per interface.
    pub fn from_v2(catalog: &Value) -> Catalog {
        let services = catalog.as_array().into_iter().flatten().map(|s| {
            let mut endpoints = Vec::new();
            for e in s["endpoints"].as_array().into_iter().flatten() {
                for (interface, key) in [
                    ("public", "publicURL"),
                    ("internal", "internalURL"),
                    ("admin", "adminURL"),
                ] {
                    if let Some(url) = text(e, key) {
                        endpoints.push(Endpoint {
                            interface: interface.into(),
                            region: text(e, "region"),
                            url,
                        });
                    }
                }
            }
            Service {
                kind: text(s, "type").unwrap_or_default(),
                name: text(s, "name").unwrap_or_default(),
                endpoints,
            }
        });
        Catalog {
            services: services.collect(),
        }
    }

    /// The regions where a service of `kind` has an endpoint.
    pub fn regions(&self, kind: &str) -> Vec<String> {
        let regions: BTreeSet<String> = self
            .services
            .iter()
            .filter(|s| s.kind == kind)
            .flat_map(|s| s.endpoints.iter().filter_map(|e| e.region.clone()))
            .collect();
        regions.into_iter().collect()
    }

    /// The URL of `kind` at `interface` in `region` (any region when the catalog has only
    /// one), from the service named `name` when several of that type answer. The error
    /// says what there is instead.
    pub fn url(
        &self,
        kind: &str,
        interface: &str,
        region: Option<&str>,
        name: Option<&str>,
    ) -> Result<String, String> {
        let of_kind: Vec<&Service> = self.services.iter().filter(|s| s.kind == kind).collect();
        if of_kind.is_empty() {
            let kinds: BTreeSet<&str> = self.services.iter().map(|s| s.kind.as_str()).collect();
            let kinds: Vec<&str> = kinds.into_iter().collect();
            return Err(format!(
                "the catalog has no `{kind}` service (it has: {})",
                kinds.join(", ")
            ));
        }
        let named: Vec<&Service> = match name {
            Some(n) => of_kind.iter().copied().filter(|s| s.name == n).collect(),
            None => of_kind.clone(),
        };
        if named.is_empty() {
            let names: Vec<&str> = of_kind.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "the catalog has no `{kind}` service named `{}` (there: {})",
                name.unwrap_or_default(),
                names.join(", ")
            ));
        }
        let regions = self.regions(kind);
        let region = match region {
            Some(r) if !regions.iter().any(|x| x == r) && !regions.is_empty() => {
                return Err(format!(
                    "region `{r}` has no `{kind}` endpoint (regions there: {})",
                    regions.join(", ")
                ));
            }
            Some(r) => Some(r),
            None if regions.len() > 1 => {
                return Err(format!(
                    "the `{kind}` service is in several regions: choose one with \
                     --region, ROLLCI_REGION or the lab's `region` ({})",
                    regions.join(", ")
                ));
            }
            None => None,
        };
        let matches = |e: &&Endpoint| {
            e.interface == interface && (region.is_none() || e.region.as_deref() == region)
        };
        let found: Vec<(&str, &str)> = named
            .iter()
            .filter_map(|s| {
                s.endpoints
                    .iter()
                    .find(matches)
                    .map(|e| (s.name.as_str(), e.url.as_str()))
            })
            .collect();
        match found.as_slice() {
            [(_, url)] => Ok(url.trim_end_matches('/').to_string()),
            [] => Err(format!(
                "the `{kind}` service has no `{interface}` endpoint in region `{}`",
                region.unwrap_or("(any)")
            )),
            several => {
                let names: Vec<&str> = several.iter().map(|(n, _)| *n).collect();
                Err(format!(
                    "several `{kind}` services answer ({}): name one with the lab's \
                     `service_name` or clouds.yaml's `{kind}_service_name`",
                    names.join(", ")
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v2() -> Catalog {
        Catalog::from_v2(&json!([
            {"type": "compute", "name": "cloudServersOpenStack", "endpoints": [
                {"region": "ORD", "publicURL": "http://m/ORD/v2/123", "tenantId": "123"},
                {"region": "DFW", "publicURL": "http://m/DFW/v2/123/", "internalURL": "http://i/DFW"}]},
            {"type": "compute", "name": "cloudServersBehavior", "endpoints": [
                {"region": "ORD", "publicURL": "http://m/behave/ORD"}]},
            {"type": "identity", "name": "keystone", "endpoints": [{"publicURL": "http://k"}]},
        ]))
    }

    #[test]
    fn a_v2_catalog_by_region_interface_and_name() {
        let c = v2();
        let nova = Some("cloudServersOpenStack");
        assert_eq!(
            c.url("compute", "public", Some("DFW"), nova).unwrap(),
            "http://m/DFW/v2/123"
        );
        assert_eq!(
            c.url("compute", "internal", Some("DFW"), nova).unwrap(),
            "http://i/DFW"
        );
        assert_eq!(c.regions("compute"), ["DFW", "ORD"]);
        let err = c.url("compute", "public", Some("LON"), nova).unwrap_err();
        assert!(err.contains("regions there: DFW, ORD"), "{err}");
        let err = c.url("compute", "public", Some("ORD"), None).unwrap_err();
        assert!(
            err.contains("cloudServersOpenStack, cloudServersBehavior"),
            "{err}"
        );
        // Only one of the two serves DFW: no name needed there.
        assert!(c.url("compute", "public", Some("DFW"), None).is_ok());
        let err = c.url("compute", "public", None, nova).unwrap_err();
        assert!(err.contains("several regions"), "{err}");
        let err = c.url("volume", "public", None, None).unwrap_err();
        assert!(err.contains("it has: compute, identity"), "{err}");
    }

    #[test]
    fn a_v3_catalog_uses_region_ids() {
        let c = Catalog::from_v3(&json!([
            {"type": "compute", "name": "nova", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": "http://n/v2.1"},
                {"interface": "internal", "region_id": "RegionOne", "url": "http://n-int/v2.1"}]},
        ]));
        assert_eq!(
            c.url("compute", "public", None, None).unwrap(),
            "http://n/v2.1"
        );
        assert_eq!(
            c.url("compute", "internal", Some("RegionOne"), None)
                .unwrap(),
            "http://n-int/v2.1"
        );
        assert!(
            c.url("compute", "admin", None, None)
                .unwrap_err()
                .contains("no `admin`")
        );
    }
}
