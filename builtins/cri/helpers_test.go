package cri

import "context"

// findPID is findPIDEnv without $CONTAINER_RUNTIME_ENDPOINT, as the tests
// call it.
func findPID(ctx context.Context, q findPIDQuery, arg, flag string) (*FindPIDResult, error) {
	return findPIDEnv(ctx, q, arg, flag, "")
}

// criResolveEndpoint is criResolveEndpointEnv without
// $CONTAINER_RUNTIME_ENDPOINT.
func criResolveEndpoint(arg, flag string) (*criEndpoint, error) {
	return criResolveEndpointEnv(arg, flag, "")
}
