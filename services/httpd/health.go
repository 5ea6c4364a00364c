package httpd

import (
	"fmt"
	"slices"

	"github.com/homerouter/homerouter/state"
)

// Health is the body of /health.json. Monitoring reads the HTTP status
// (200 or 503) and FirstError; a person reads Checks.
type Health struct {
	// FirstError is the first failing check, as one line; empty when
	// healthy.
	FirstError string `json:"first_error"`
	Checks     Check  `json:"checks"`
}

// Check is one node of the check tree. A node is OK when it and all its
// children are.
type Check struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Notice is worth knowing but not a failure (see state.Store.Notices).
	Notice   string  `json:"notice,omitempty"`
	Detail   any     `json:"detail,omitempty"`
	Children []Check `json:"children,omitempty"`
}

// health computes the check tree from the store: every config file loaded,
// every service running and reporting no problem.
func health(st *state.Store) Health {
	config := Check{Name: "config", OK: true}
	for _, f := range st.ConfigStatus.Value() {
		c := Check{Name: f.File, OK: f.Error == "", Error: f.Error}
		config.Children = append(config.Children, c)
	}
	services := Check{Name: "services", OK: true}
	problems := st.Problems.Value()
	for _, s := range st.Services.Value() {
		c := Check{Name: s.Name, OK: s.State == "running", Detail: s}
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
		if !slices.ContainsFunc(st.Services.Value(), func(s state.ServiceStatus) bool { return s.Name == name }) {
			others = append(others, name)
		}
	}
	slices.Sort(others)
	for _, name := range others {
		services.Children = append(services.Children, Check{Name: name, Error: problems[name]})
	}
	root := Check{Name: "homerouter", OK: true, Children: []Check{config, services}}
	notices := st.Notices.Value()
	var subjects []string
	for s := range notices {
		subjects = append(subjects, s)
	}
	slices.Sort(subjects)
	for _, s := range subjects {
		root.Children = append(root.Children, Check{Name: s, OK: true, Notice: notices[s]})
	}
	h := Health{}
	finish(&root, "", &h.FirstError)
	h.Checks = root
	return h
}

// finish sets OK on each node from its children, depth first, and records
// the first failure as "path: error".
func finish(c *Check, parent string, first *string) {
	path := c.Name
	if parent != "" {
		path = parent + "/" + c.Name
	}
	if c.Error != "" {
		c.OK = false
		if *first == "" {
			*first = path + ": " + c.Error
		}
	}
	for i := range c.Children {
		finish(&c.Children[i], path, first)
		if !c.Children[i].OK {
			c.OK = false
		}
	}
}
