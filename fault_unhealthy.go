//go:build fault_unhealthy

package main

// This file is only in the test image `make image FAULT=unhealthy`
// builds: a router that runs every service but never reports healthy,
// for the update's rollback to be tested. A normal build has no such
// path.
func init() {
	buildFault = "this image was built never to be healthy (make image FAULT=unhealthy), to test the update's rollback"
}
