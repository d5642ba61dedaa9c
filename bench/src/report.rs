//! The figures: collected per setup and run, printed as a table (median,
//! min–max, ratio to the kernel) and written as JSON for the chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::Options;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Figure {
    BulkIn,
    BulkOut,
    Flows,
    FlowsSharded,
    RoundTrips,
    Connections,
    Memory,
    Cost10,
    CostMany,
    Tun64,
    Tun1500,
}

impl Figure {
    const ALL: [Figure; 11] = [
        Figure::BulkIn,
        Figure::BulkOut,
        Figure::Flows,
        Figure::FlowsSharded,
        Figure::RoundTrips,
        Figure::Connections,
        Figure::Memory,
        Figure::Cost10,
        Figure::CostMany,
        Figure::Tun64,
        Figure::Tun1500,
    ];

    fn key(self) -> &'static str {
        match self {
            Figure::BulkIn => "bulk_in",
            Figure::BulkOut => "bulk_out",
            Figure::Flows => "bulk_in_4_flows",
            Figure::FlowsSharded => "bulk_in_4_flows_2_shards",
            Figure::RoundTrips => "round_trips",
            Figure::Connections => "connections",
            Figure::Memory => "memory_per_idle_connection",
            Figure::Cost10 => "request_cost_10_open",
            Figure::CostMany => "request_cost_many_open",
            Figure::Tun64 => "tun_ceiling_64",
            Figure::Tun1500 => "tun_ceiling_1500",
        }
    }

    fn title(self, idle: usize) -> String {
        match self {
            Figure::BulkIn => "bulk into the stack (it receives)".into(),
            Figure::BulkOut => "bulk out of the stack (it sends)".into(),
            Figure::Flows => "4 flows into the stack".into(),
            Figure::FlowsSharded => "4 flows into rstcp with 2 shards".into(),
            Figure::RoundTrips => "1-byte round trips".into(),
            Figure::Connections => "connections (64 B req/reply)".into(),
            Figure::Memory => "memory per idle connection".into(),
            Figure::Cost10 => "request cost, 10 open".into(),
            Figure::CostMany => format!("request cost, {idle} open"),
            Figure::Tun64 => "raw TUN ceiling, 64 B".into(),
            Figure::Tun1500 => "raw TUN ceiling, 1500 B".into(),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Figure::BulkIn | Figure::BulkOut | Figure::Flows | Figure::FlowsSharded => "Gbit/s",
            Figure::RoundTrips => "1/s",
            Figure::Connections => "conn/s",
            Figure::Memory => "bytes",
            Figure::Cost10 | Figure::CostMany => "µs",
            Figure::Tun64 | Figure::Tun1500 => "pkt/s",
        }
    }

    fn higher_is_better(self) -> bool {
        !matches!(self, Figure::Memory | Figure::Cost10 | Figure::CostMany)
    }
}

pub struct Results {
    labels: Vec<String>,
    values: BTreeMap<Figure, BTreeMap<String, Vec<f64>>>,
    runs: usize,
    secs: f64,
    idle: usize,
    pub smoltcp: Option<String>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn fmt(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

impl Results {
    pub fn new(labels: &[&str], o: &Options) -> Results {
        Results {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            values: BTreeMap::new(),
            runs: o.runs,
            secs: o.secs,
            idle: o.idle,
            smoltcp: None,
        }
    }

    pub fn add(&mut self, f: Figure, label: &str, v: f64) {
        self.values
            .entry(f)
            .or_default()
            .entry(label.to_string())
            .or_default()
            .push(v);
    }

    /// A figure with no kernel counterpart (the TUN ceiling).
    pub fn add_extra(&mut self, f: Figure, v: f64) {
        self.add(f, "tun", v);
    }

    fn cell(v: Option<&Vec<f64>>) -> String {
        match v {
            Some(v) if !v.is_empty() => {
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("{} ({}–{})", fmt(median(v)), fmt(lo), fmt(hi))
            }
            _ => "-".into(),
        }
    }

    pub fn print(&self) {
        let mut out = String::new();
        let kernels: Vec<&String> = self.labels.iter().filter(|l| *l != "rstcp").collect();
        let _ = write!(out, "\n{:<34} {:>24}", "figure (median (min–max))", "rstcp");
        for k in &kernels {
            let _ = write!(out, " {:>26} {:>6}", k, "ratio");
        }
        out.push('\n');
        for f in Figure::ALL {
            let Some(by) = self.values.get(&f) else {
                continue;
            };
            let name = format!("{} [{}]", f.title(self.idle), f.unit());
            if let Some(t) = by.get("tun") {
                let _ = writeln!(
                    out,
                    "{name:<34} {:>24}   (TUN device alone; no kernel counterpart)",
                    Self::cell(Some(t))
                );
                continue;
            }
            let r = by.get("rstcp");
            let _ = write!(out, "{name:<34} {:>24}", Self::cell(r));
            for k in &kernels {
                let kv = by.get(*k);
                let ratio = match (r, kv) {
                    (Some(r), Some(k)) if median(k) != 0.0 => {
                        format!("{:.2}", median(r) / median(k))
                    }
                    _ => "-".into(),
                };
                let _ = write!(out, " {:>26} {ratio:>6}", Self::cell(kv));
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "ratio = rstcp / the column left of it (medians of {} runs, {} s each); higher is better except for memory and request cost",
            self.runs, self.secs
        );
        let _ = writeln!(
            out,
            "memory: rstcp = heap bytes in use (mallinfo2) per connection; kernel = slab bytes in use (/proc/slabinfo) per socket (both ends are kernel sockets)"
        );
        if let Some(s) = &self.smoltcp {
            let _ = writeln!(out, "smoltcp: {s}");
        }
        print!("{out}");
    }

    pub fn write_json(&self, path: &str) -> std::io::Result<()> {
        let mut j = String::new();
        let _ = write!(
            j,
            "{{\n  \"runs\": {},\n  \"seconds_per_figure\": {},\n  \"idle_connections\": {},\n  \"setups\": [{}],\n",
            self.runs,
            self.secs,
            self.idle,
            self.labels.iter().map(|l| format!("\"{l}\"")).collect::<Vec<_>>().join(", ")
        );
        let smol = self.smoltcp.as_deref().unwrap_or("");
        let _ = writeln!(j, "  \"smoltcp\": \"{}\",", smol.replace('"', "'"));
        j.push_str("  \"figures\": [\n");
        let mut first = true;
        for f in Figure::ALL {
            let Some(by) = self.values.get(&f) else {
                continue;
            };
            if !first {
                j.push_str(",\n");
            }
            first = false;
            let _ = write!(
                j,
                "    {{\"key\": \"{}\", \"title\": \"{}\", \"unit\": \"{}\", \"higher_is_better\": {}, \"values\": {{",
                f.key(),
                f.title(self.idle),
                f.unit(),
                f.higher_is_better()
            );
            let vals: Vec<String> = by
                .iter()
                .map(|(l, v)| {
                    let nums: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
                    format!("\"{l}\": [{}]", nums.join(", "))
                })
                .collect();
            j.push_str(&vals.join(", "));
            j.push_str("}}");
        }
        j.push_str("\n  ]\n}\n");
        std::fs::write(path, j)
    }
}
