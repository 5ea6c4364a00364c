package state

import "time"

// HealthCheck is one node of the router's check tree, which /health.json and
// the status page show. A node is OK when it and all its children are.
type HealthCheck struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Notice is worth knowing but not a failure (see Store.Notices).
	Notice string `json:"notice,omitempty"`
	// Summary is what a passing check saw, for a person: "10.77.0.1
	// answered in 0.4ms".
	Summary  string        `json:"summary,omitempty"`
	Detail   any           `json:"detail,omitempty"`
	Children []HealthCheck `json:"children,omitempty"`
}

// Diagnosis is what the diagnostics service last found out about the
// links and the way to the internet, published on Store.Diagnosis:
// a check per link, and under uplink0 the chain from carrier to the
// ISP's gateways and DNS servers. The rest of the tree (config files,
// services, /perm) /health.json reads from their own topics.
type Diagnosis struct {
	// Checked is when the checks last ran; zero while they have not.
	Checked time.Time     `json:"checked,omitzero"`
	Checks  []HealthCheck `json:"checks,omitempty"`
}

// RouterInfo is what the router is: published once at start by main.
type RouterInfo struct {
	Version  string    `json:"version"`
	Hostname string    `json:"hostname"`
	Started  time.Time `json:"started"`
}
