//! ATT&CK coverage of a detector: which tactics and techniques its detections
//! (those that raise findings) are tagged with, and which detections stand behind
//! each, as a table or as an ATT&CK Navigator layer. Pure data: the binary prints it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::detector::Detector;

/// Enterprise ATT&CK tactics in matrix order, by their tag names.
pub const TACTICS: [&str; 14] = [
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
];

/// One tactic's rows: technique → the detections tagged with both.
#[derive(Debug, Default)]
pub struct Coverage {
    pub by_tactic: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// technique → every detection tagged with it.
    pub by_technique: BTreeMap<String, BTreeSet<String>>,
    /// Detections with no technique tag.
    pub untagged: Vec<String>,
    pub detections: usize,
}

impl Coverage {
    pub fn of(det: &Detector) -> Coverage {
        let mut c = Coverage::default();
        for e in det.entries() {
            if e.silent {
                continue;
            }
            c.detections += 1;
            let i = e.info;
            let name = i.name.clone().unwrap_or_else(|| i.key.clone());
            if i.mitre.techniques.is_empty() {
                c.untagged.push(name.clone());
            }
            for t in &i.mitre.techniques {
                c.by_technique
                    .entry(t.clone())
                    .or_default()
                    .insert(name.clone());
                for tactic in &i.mitre.tactics {
                    c.by_tactic
                        .entry(tactic.clone())
                        .or_default()
                        .entry(t.clone())
                        .or_default()
                        .insert(name.clone());
                }
            }
        }
        c
    }

    /// Tactics in matrix order, then any others the rules name.
    pub fn tactics(&self) -> Vec<&str> {
        let mut out: Vec<&str> = TACTICS
            .iter()
            .copied()
            .filter(|t| self.by_tactic.contains_key(*t))
            .collect();
        out.extend(
            self.by_tactic
                .keys()
                .map(String::as_str)
                .filter(|t| !TACTICS.contains(t)),
        );
        out
    }

    /// An ATT&CK Navigator layer (format 4.5): each technique scored by how many
    /// detections cover it, the detections named in its comment. Techniques carry
    /// no tactic, so the Navigator shows them under every tactic they belong to.
    pub fn navigator_layer(&self, name: &str) -> Value {
        let max = self
            .by_technique
            .values()
            .map(BTreeSet::len)
            .max()
            .unwrap_or(1);
        let techniques: Vec<Value> = self
            .by_technique
            .iter()
            .map(|(t, rules)| {
                json!({
                    "techniqueID": t,
                    "score": rules.len(),
                    "color": "",
                    "comment": rules.iter().cloned().collect::<Vec<_>>().join(", "),
                    "enabled": true,
                    "showSubtechniques": false,
                })
            })
            .collect();
        json!({
            "name": name,
            "versions": {"attack": "16", "navigator": "5.1.0", "layer": "4.5"},
            "domain": "enterprise-attack",
            "description": format!(
                "{} detections covering {} techniques; score = detections per technique",
                self.detections,
                self.by_technique.len()
            ),
            "filters": {"platforms": ["IaaS", "Identity Provider", "SaaS", "Office Suite"]},
            "sorting": 3,
            "layout": {"layout": "side", "showID": true, "showName": true},
            "hideDisabled": false,
            "techniques": techniques,
            "gradient": {"colors": ["#d6eaff", "#1f6fd1"], "minValue": 0, "maxValue": max},
            "legendItems": [],
            "showTacticRowBackground": false,
            "selectTechniquesAcrossTactics": true,
            "selectSubtechniquesWithParent": false,
        })
    }
}
