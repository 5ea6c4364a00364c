package state

import "time"

// UpdateState is /perm/update/state.json, the update's own record of the
// image slots /perm/update/a and /perm/update/b. The update service
// writes it, synchronously and atomically, before each step it takes: a
// kexec or a power cut may follow at once.
//
//	{"active": "a", "trial": "b", "trial_started": "2026-12-06T18:00:00Z",
//	 "deadline": "2m0s", "attempts": 1, "last": "committed slot a ..."}
type UpdateState struct {
	// Active is the committed slot: the one a cold boot from disk runs,
	// and the one a failed trial returns to. Empty when none is (a
	// router booted over the network, before its first update).
	Active string `json:"active,omitempty"`
	// Trial is the slot being tried: the switch wrote it before the
	// kexec; the trial boot clears it when it commits or rolls back.
	Trial        string    `json:"trial,omitempty"`
	TrialStarted time.Time `json:"trial_started,omitzero"`
	// Deadline is how long the trial boot may take to become healthy.
	Deadline Duration `json:"deadline,omitempty"`
	// Attempts counts the trials since the last commit.
	Attempts int `json:"attempts,omitempty"`
	// Last says how the last trial ended, for a person and for the
	// update tool.
	Last string `json:"last,omitempty"`
}

// UpdateStatus is the update service's view of the running image,
// published on Store.Update for /health.json and the status page.
type UpdateStatus struct {
	// Slot is the slot this boot runs: "a" or "b", or "" when it came
	// from elsewhere (the network, a boot partition not yet in a slot,
	// or homerouter run).
	Slot  string      `json:"slot,omitempty"`
	State UpdateState `json:"state"`
}
