package services

import (
	"fmt"
	"slices"
	"time"

	"github.com/homerouter/homerouter/state"
)

// Health is the router's verdict on itself: the body of /health.json,
// which monitoring and the update tool read (the HTTP status, 200 or
// 503, and FirstError), and what a trial boot of a new image waits for
// before it commits. A person reads Checks.
type Health struct {
	// FirstError is the first failing check, as "path: error"; empty
	// when healthy.
	FirstError string `json:"first_error"`
	// Version is the running homerouter's, and Slot the update slot it
	// runs from ("" when none: booted over the network, or run).
	Version string `json:"version"`
	Slot    string `json:"slot,omitempty"`
	// Started is when it started.
	Started time.Time         `json:"started,omitzero"`
	Checks  state.HealthCheck `json:"checks"`
}

// CurrentHealth gathers the check tree from the store, in the order that makes
// the first failure the likeliest cause of the others: the config files,
// /perm, the services, then the diagnostics service's checks of the
// links and the way to the internet (a service that crashed or a config
// file that does not parse is why the internet does not work, rarely the
// other way round); notices last.
func CurrentHealth(st *state.Store) Health {
	config := state.HealthCheck{Name: "config", OK: true}
	for _, f := range st.ConfigStatus.Value() {
		c := state.HealthCheck{Name: f.File, OK: f.Error == "", Error: f.Error}
		config.Children = append(config.Children, c)
	}
	problems := st.Problems.Value()
	notices := st.Notices.Value()
	// /perm: the state files' writes (a failure is a problem: leases
	// would be lost at a reboot) and what PID 1 found at boot (a tmpfs
	// is a notice: the router works, and an unhealthy router would make
	// every update roll back).
	perm := state.HealthCheck{Name: "perm", OK: true, Error: problems[state.SaveProblem], Notice: notices[permNotice], Summary: "persistent and writable"}
	if perm.Error != "" || perm.Notice != "" {
		perm.Summary = ""
	}
	services := state.HealthCheck{Name: "services", OK: true}
	for _, s := range st.Services.Value() {
		c := state.HealthCheck{Name: s.Name, OK: s.State == "running", Detail: s}
		switch {
		case !c.OK && s.LastError != "":
			c.Error = fmt.Sprintf("%s after: %s", s.State, s.LastError)
		case !c.OK:
			c.Error = s.State
		case problems[s.Name] != "":
			c.Error = problems[s.Name]
		}
		services.Children = append(services.Children, c)
	}
	// Problems reported under another name than a service's (a service
	// with several kinds of problem) get their own nodes.
	var others []string
	for name := range problems {
		if name != state.SaveProblem && !slices.ContainsFunc(st.Services.Value(), func(s state.ServiceStatus) bool { return s.Name == name }) {
			others = append(others, name)
		}
	}
	slices.Sort(others)
	for _, name := range others {
		services.Children = append(services.Children, state.HealthCheck{Name: name, Error: problems[name]})
	}
	root := state.HealthCheck{Name: "homerouter", OK: true, Children: []state.HealthCheck{config, perm, services}}
	if d := st.Diagnosis.Value(); d.Checked.IsZero() {
		root.Children = append(root.Children, state.HealthCheck{Name: "internet", Error: "not checked yet (the diagnostics service has not run)"})
	} else {
		root.Children = append(root.Children, d.Checks...)
	}
	var subjects []string
	for s := range notices {
		if s != permNotice {
			subjects = append(subjects, s)
		}
	}
	slices.Sort(subjects)
	for _, s := range subjects {
		root.Children = append(root.Children, state.HealthCheck{Name: s, OK: true, Notice: notices[s]})
	}
	info := st.Router.Value()
	h := Health{Version: info.Version, Slot: st.Update.Value().Slot, Started: info.Started}
	finish(&root, "", &h.FirstError)
	h.Checks = root
	return h
}

// permNotice is the subject of PID 1's notice about /perm (main.go).
const permNotice = "perm"

// finish sets OK on each node from its children, depth first, and records
// the first failure as "path: error".
func finish(c *state.HealthCheck, parent string, first *string) {
	path := c.Name
	if parent != "" {
		path = parent + "/" + c.Name
	}
	c.OK = c.Error == ""
	if c.Error != "" && *first == "" {
		*first = path + ": " + c.Error
	}
	for i := range c.Children {
		finish(&c.Children[i], path, first)
		if !c.Children[i].OK {
			c.OK = false
		}
	}
}
