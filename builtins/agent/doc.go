// Package agent runs kdiag's node built-ins on the node that hosts their
// target when kdiag itself runs elsewhere, through a short-lived agent pod.
package agent
