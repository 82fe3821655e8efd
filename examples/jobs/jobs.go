// Package jobs holds what the worker and the enqueuer examples share: the
// job kinds and their argument types. In a deployment this is the package
// both your worker binary and your web app import.
package jobs

// Job kinds.
const (
	KindReindex = "reindex"
	KindReport  = "report"
)

// ReindexArgs are the arguments of a reindex job: index documents 1..Docs of
// Tenant.
type ReindexArgs struct {
	Tenant string `json:"tenant"`
	Docs   int64  `json:"docs"`
}

// ReportArgs are the arguments of the periodic report job.
type ReportArgs struct {
	Period string `json:"period"`
}
