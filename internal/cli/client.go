package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/pquerna/otp/totp"
	"github.com/spf13/cobra"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/client"
	"github.com/elevatepdp/elevate/internal/demo"
	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/internal/workflow"
)

// The API client commands. Each takes --server, --token and -o; an error
// answer of the API is printed as "elevate: <code>: <message>" with its
// details below, and exits 1. Tokens and TOTP secrets are never printed,
// except by the commands whose job it is (totp enroll, totp code, demo).

const (
	defaultServer   = "http://127.0.0.1:8181"
	envServer       = "ELEVATE_SERVER"
	envToken        = "ELEVATE_TOKEN"
	envTOTPSecret   = "ELEVATE_TOTP_SECRET"
	defaultDemoFile = "bin/demo-credentials.json"
)

// conn holds the flags every API command takes.
type conn struct {
	server, token, output string
}

func (c *conn) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.server, "server", defaultServer, "Elevate server URL (env "+envServer+")")
	// No default shown from the environment: --help must not print a token.
	f.StringVar(&c.token, "token", "", "bearer token (env "+envToken+"; prefer it: flags show in the process list)")
	f.StringVarP(&c.output, "output", "o", "table", "output format: table or json")
}

// client is the API client the flags (or the environment) describe.
func (c *conn) client(cmd *cobra.Command) (*client.Client, printer, error) {
	if err := oneOf("output", c.output, "table", "json"); err != nil {
		return nil, printer{}, err
	}
	if v := os.Getenv(envServer); v != "" && !cmd.Flags().Changed("server") {
		c.server = v
	}
	if !cmd.Flags().Changed("token") {
		c.token = os.Getenv(envToken)
	}
	token := strings.TrimSpace(c.token)
	if token == "" {
		// Every call needs one; saying so here also says how to give it.
		return nil, printer{}, fmt.Errorf("unauthenticated: no token: give --token or set %s", envToken)
	}
	cl := client.New(c.server, token, nil)
	if err := cl.Err(); err != nil {
		return nil, printer{}, usageError{fmt.Errorf("--server: %w", err)}
	}
	return cl, printer{w: cmd.OutOrStdout(), note: cmd.ErrOrStderr(), json: c.output == "json"}, nil
}

// apiCommand completes cmd into a command that calls the API with run.
func apiCommand(cmd *cobra.Command, run func(ctx context.Context, c *client.Client, p printer, args []string) error) *cobra.Command {
	var cn conn
	cn.flags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cl, p, err := cn.client(cmd)
		if err != nil {
			return err
		}
		return explain(cmd.ErrOrStderr(), run(cmd.Context(), cl, p, args))
	}
	return cmd
}

// explain prints an error answer of the API as code, message and one line
// per detail (policy violations, invalid values); other errors are left to
// Execute.
func explain(stderr io.Writer, err error) error {
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	fmt.Fprintf(stderr, "elevate: %s: %s\n", clean(apiErr.Code), clean(apiErr.Message))
	for _, e := range apiErr.Errors {
		fmt.Fprintf(stderr, "  %s\n", clean(e))
	}
	return errFailed
}

// printer writes an answer to w as JSON or as an aligned table; notes for
// the reader go to note (stderr), away from what scripts parse.
type printer struct {
	w, note io.Writer
	json    bool
}

func (p printer) print(v any, fill func(t *table)) error {
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	t := &table{tw: tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)}
	fill(t)
	return t.tw.Flush()
}

type table struct{ tw *tabwriter.Writer }

// row writes one line; an empty cell is "-".
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		if c == "" {
			c = "-"
		}
		fmt.Fprint(t.tw, clean(c))
	}
	fmt.Fprint(t.tw, "\n")
}

// section ends the table so far and starts another, with other columns.
func (t *table) section(title string) {
	_ = t.tw.Flush()
	fmt.Fprintf(t.tw, "\n%s\n", title)
}

// clean quotes a value holding tabs, newlines, terminal escapes or other
// invisible characters: justifications and reasons come from other users
// and must neither break the columns nor drive the reader's terminal.
func clean(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) {
		return strconv.QuoteToGraphic(s)
	}
	return s
}

// ts is a time as RFC 3339 UTC, or "" for none.
func ts(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func oneOf[T ~string](flag string, v T, allowed ...T) error {
	if v == "" || slices.Contains(allowed, v) {
		return nil
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return usageError{fmt.Errorf("--%s %q: use %s", flag, v, strings.Join(names, ", "))}
}

// parseTime reads an RFC 3339 flag value; nil when not given.
func parseTime(flag, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, usageError{fmt.Errorf("--%s %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", flag, v)}
	}
	return &t, nil
}

// checkDuration refuses a duration the server would refuse anyway, so the
// mistake is a usage error (exit 2) rather than a failed call.
func checkDuration(flag, v string) error {
	if v == "" {
		return nil
	}
	if d, err := time.ParseDuration(v); err != nil || d <= 0 {
		return usageError{fmt.Errorf("--%s %q is not a positive duration such as 30m or 2h", flag, v)}
	}
	return nil
}

func mfa(code string) *workflow.MFAEvidence {
	if code == "" {
		return nil
	}
	return &workflow.MFAEvidence{TOTP: code}
}

func newRolesCmd() *cobra.Command {
	return apiCommand(&cobra.Command{
		Use:   "roles",
		Short: "List the roles and their settings",
		Args:  args(cobra.NoArgs),
	}, func(ctx context.Context, c *client.Client, p printer, _ []string) error {
		roles, err := c.Roles(ctx)
		if err != nil {
			return err
		}
		return p.print(roles, func(t *table) {
			t.row("ID", "NAME", "PERMISSIONS", "MIN", "DEFAULT", "MAX", "MFA", "JUSTIFICATION", "TICKET", "APPROVAL")
			for _, r := range roles {
				s := r.Settings
				just := yesNo(s.RequireJustification)
				if s.RequireJustification && s.JustificationMinLength > 0 {
					just += fmt.Sprintf(" (min %d)", s.JustificationMinLength)
				}
				ticket := yesNo(s.RequireTicket)
				if s.RequireTicket && s.TicketPattern != "" {
					ticket += " (" + s.TicketPattern + ")"
				}
				approval := "no"
				if s.RequireApproval {
					approval = fmt.Sprintf("%d of %s", s.ApprovalsRequired, strings.Join(s.Approvers, ","))
				}
				t.row(r.ID, r.Name, strings.Join(r.Permissions, ","), s.MinDuration, s.DefaultDuration, s.MaxDuration,
					yesNo(s.RequireMFA), just, ticket, approval)
			}
		})
	})
}

func newMyRolesCmd() *cobra.Command {
	return apiCommand(&cobra.Command{
		Use:   "my-roles",
		Short: "List your eligible, active and pending roles",
		Long: `List your roles: those you are eligible for (and may activate), those active
now, and your requests waiting for approval or their start. UNTIL is when an
eligibility or elevation ends, or when a pending request times out.`,
		Args: args(cobra.NoArgs),
	}, func(ctx context.Context, c *client.Client, p printer, _ []string) error {
		mine, err := c.MyRoles(ctx)
		if err != nil {
			return err
		}
		return p.print(mine, func(t *table) {
			t.row("STATE", "ROLE", "SCOPE", "ID", "FROM", "UNTIL")
			for _, a := range mine.Eligible {
				t.row("eligible", a.Role, a.Scope, a.ID, ts(a.Start), ts(a.End))
			}
			for _, e := range mine.Active {
				t.row("active", e.Role, e.Scope, e.ID, ts(e.ActivatedAt), ts(e.ExpiresAt))
			}
			for _, a := range mine.Pending {
				t.row(string(a.Status), a.Role, a.Scope, a.ID, ts(a.StartAt), ts(a.Deadline))
			}
		})
	})
}

func assignmentRows(t *table, list ...store.Assignment) {
	t.row("ID", "PRINCIPAL", "ROLE", "SCOPE", "TYPE", "START", "END", "CREATED BY", "CREATED AT")
	for _, a := range list {
		t.row(a.ID, a.Principal, a.Role, a.Scope, string(a.Type), ts(a.Start), ts(a.End), a.CreatedBy, ts(&a.CreatedAt))
	}
}

func newAssignCmd() *cobra.Command {
	var r workflow.AssignmentRequest
	var typ, start, end string
	cmd := apiCommand(&cobra.Command{
		Use:   "assign PRINCIPAL ROLE",
		Short: "Make a principal eligible for a role, or give it the role",
		Long: `Make PRINCIPAL eligible for ROLE at --scope (--type eligible, the default), or
give it the role outright (--type active), permanently or from --start to --end.`,
		Args: args(cobra.ExactArgs(2)),
	}, func(ctx context.Context, c *client.Client, p printer, a []string) error {
		r.Principal, r.Role = a[0], a[1]
		asg, err := c.CreateAssignment(ctx, r)
		if err != nil {
			return err
		}
		return p.print(asg, func(t *table) { assignmentRows(t, asg) })
	})
	f := cmd.Flags()
	f.StringVar(&r.Scope, "scope", "/", "scope of the assignment, such as /administrativeUnits/new-york-office")
	f.StringVar(&typ, "type", string(store.Eligible), "eligible or active")
	f.StringVar(&start, "start", "", "start of the assignment (RFC 3339); default now")
	f.StringVar(&end, "end", "", "end of the assignment (RFC 3339); default never")
	f.StringVar(&r.Justification, "justification", "", "why the assignment is made")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		r.Type = store.AssignmentType(typ)
		var err error
		if r.Start, err = parseTime("start", start); err != nil {
			return err
		}
		if r.End, err = parseTime("end", end); err != nil {
			return err
		}
		return oneOf("type", r.Type, store.Eligible, store.Active)
	}
	return cmd
}

func newAssignmentsCmd() *cobra.Command {
	var q client.AssignmentQuery
	var state string
	cmd := apiCommand(&cobra.Command{
		Use:   "assignments",
		Short: "List assignments (everyone's for admins, your own otherwise)",
		Args:  args(cobra.NoArgs),
	}, func(ctx context.Context, c *client.Client, p printer, _ []string) error {
		q.State = workflow.AssignmentState(state)
		list, err := c.Assignments(ctx, q)
		if err != nil {
			return err
		}
		return p.print(list, func(t *table) { assignmentRows(t, list...) })
	})
	f := cmd.Flags()
	f.StringVar(&q.Principal, "principal", "", "only this principal's")
	f.StringVar(&q.Role, "role", "", "only this role's")
	f.StringVar(&state, "state", "", "only eligible, active or expired ones")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		return oneOf("state", workflow.AssignmentState(state), workflow.StateEligible, workflow.StateActive, workflow.StateExpired)
	}
	return cmd
}

func newUnassignCmd() *cobra.Command {
	return apiCommand(&cobra.Command{
		Use:   "unassign ID",
		Short: "Remove an assignment, revoking its live elevations",
		Args:  args(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *client.Client, p printer, a []string) error {
		asg, revoked, err := c.DeleteAssignment(ctx, a[0])
		if err != nil {
			return err
		}
		out := struct {
			Assignment store.Assignment   `json:"assignment"`
			Revoked    []store.Activation `json:"revoked"`
		}{asg, revoked}
		return p.print(out, func(t *table) {
			assignmentRows(t, asg)
			if len(revoked) > 0 {
				t.section("Revoked:")
				activationRows(t, revoked...)
			}
		})
	})
}

func activationRows(t *table, list ...store.Activation) {
	t.row("ID", "PRINCIPAL", "ROLE", "SCOPE", "STATUS", "DURATION", "APPROVALS", "START", "EXPIRES", "DEADLINE", "ENDED")
	for _, a := range list {
		approvals := ""
		if a.ApprovalsRequired > 0 {
			approvals = fmt.Sprintf("%d/%d", len(a.Approvals), a.ApprovalsRequired)
		}
		start := a.ActivatedAt
		if start == nil {
			start = a.StartAt
		}
		t.row(a.ID, a.Principal, a.Role, a.Scope, string(a.Status), a.Duration, approvals,
			ts(start), ts(a.ExpiresAt), ts(a.Deadline), ts(a.EndedAt))
	}
}

func newActivateCmd() *cobra.Command {
	var r workflow.ActivationRequest
	var ticket, code, start string
	cmd := apiCommand(&cobra.Command{
		Use:   "activate ROLE",
		Short: "Activate a role you are eligible for",
		Long: `Activate ROLE at --scope for --duration (the role's default when not given).
The answer is an active elevation (with its expiry), a request pending
approval (with its deadline), or a scheduled one (with --start).`,
		Args: args(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *client.Client, p printer, a []string) error {
		r.Role, r.MFA = a[0], mfa(code)
		act, err := c.Activate(ctx, r)
		if err != nil {
			return err
		}
		return p.print(act, func(t *table) { activationRows(t, act) })
	})
	f := cmd.Flags()
	f.StringVar(&r.Scope, "scope", "/", "scope to activate the role at")
	f.StringVar(&r.Duration, "duration", "", "how long, such as 1h (default: the role's default)")
	f.StringVar(&r.Justification, "justification", "", "why you need the role")
	f.StringVar(&ticket, "ticket", "", "ticket as SYSTEM:NUMBER, such as servicenow:INC0012345")
	f.StringVar(&code, "totp", "", "current TOTP code, for roles that require MFA")
	f.StringVar(&start, "start", "", "start later, at this RFC 3339 time")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		var err error
		if r.Start, err = parseTime("start", start); err != nil {
			return err
		}
		if ticket != "" {
			system, number, ok := strings.Cut(ticket, ":")
			if !ok || system == "" || number == "" {
				return usageError{fmt.Errorf("--ticket %q is not SYSTEM:NUMBER such as servicenow:INC0012345", ticket)}
			}
			r.Ticket = &store.Ticket{System: system, Number: number}
		}
		return checkDuration("duration", r.Duration)
	}
	return cmd
}

func newRequestsCmd() *cobra.Command {
	var q client.ActivationQuery
	var status string
	var approvable bool
	cmd := apiCommand(&cobra.Command{
		Use:   "requests",
		Short: "List activations (everyone's for admins, your own otherwise)",
		Long: `List activations: requests and elevations, past and present. With
--approvable, list instead the pending requests you may approve or deny.`,
		Args: args(cobra.NoArgs),
	}, func(ctx context.Context, c *client.Client, p printer, _ []string) error {
		var list []store.Activation
		var err error
		if approvable {
			list, err = c.Approvals(ctx)
		} else {
			q.Status = store.Status(status)
			list, err = c.Activations(ctx, q)
		}
		if err != nil {
			return err
		}
		return p.print(list, func(t *table) { activationRows(t, list...) })
	})
	f := cmd.Flags()
	f.StringVar(&q.Principal, "principal", "", "only this principal's")
	f.StringVar(&status, "status", "", "only those with this status")
	f.BoolVar(&approvable, "approvable", false, "list the pending requests you may decide")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if approvable && (q.Principal != "" || status != "") {
			return usageError{errors.New("--approvable lists every request you may decide: it takes no --principal or --status")}
		}
		return oneOf("status", store.Status(status), store.Pending, store.Scheduled, store.Live, store.Denied,
			store.Cancelled, store.TimedOut, store.Deactivated, store.Revoked, store.Expired)
	}
	return cmd
}

// newActionCmd is approve, deny, cancel or deactivate: a change of one
// activation, with a --justification flag when justificationHelp is set.
func newActionCmd(use, short, justificationHelp string,
	do func(c *client.Client, ctx context.Context, id, justification string) (store.Activation, error)) *cobra.Command {
	var justification string
	cmd := apiCommand(&cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *client.Client, p printer, a []string) error {
		act, err := do(c, ctx, a[0], justification)
		if err != nil {
			return err
		}
		return p.print(act, func(t *table) { activationRows(t, act) })
	})
	if justificationHelp != "" {
		cmd.Flags().StringVar(&justification, "justification", "", justificationHelp)
	}
	return cmd
}

func newApproveCmd() *cobra.Command {
	return newActionCmd("approve", "Approve a pending request", "why you approve (roles may require one)", (*client.Client).Approve)
}

func newDenyCmd() *cobra.Command {
	return newActionCmd("deny", "Deny a pending request", "why you deny (roles may require one)", (*client.Client).Deny)
}

func newCancelCmd() *cobra.Command {
	return newActionCmd("cancel", "Withdraw your pending or scheduled request", "", (*client.Client).Cancel)
}

func newDeactivateCmd() *cobra.Command {
	return newActionCmd("deactivate", "End a live elevation early", "why you end it", (*client.Client).Deactivate)
}

func newExtendCmd() *cobra.Command {
	var r workflow.ExtendRequest
	var code string
	cmd := apiCommand(&cobra.Command{
		Use:   "extend ID --duration 30m",
		Short: "Add time to your live elevation",
		Args:  args(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *client.Client, p printer, a []string) error {
		r.MFA = mfa(code)
		act, err := c.Extend(ctx, a[0], r)
		if err != nil {
			return err
		}
		return p.print(act, func(t *table) { activationRows(t, act) })
	})
	f := cmd.Flags()
	f.StringVar(&r.Duration, "duration", "", "time to add, such as 30m (required)")
	f.StringVar(&r.Justification, "justification", "", "why you need more time")
	f.StringVar(&code, "totp", "", "current TOTP code, for roles that require MFA")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		// Checked here rather than by MarkFlagRequired, whose error would
		// not be a usage error.
		if r.Duration == "" {
			return usageError{errors.New("--duration is required, such as --duration 30m")}
		}
		return checkDuration("duration", r.Duration)
	}
	return cmd
}

func newAuthorizeCmd() *cobra.Command {
	var r workflow.AuthorizeRequest
	cmd := apiCommand(&cobra.Command{
		Use:   "authorize ACTION",
		Short: "Ask whether an action is allowed; exit 0 on allow, 1 on deny",
		Long: `Ask whether the caller (or --subject) may take ACTION, such as users.create,
at --scope. Prints allow or deny, the reason and the decision id. Exits 0 on
allow and 1 on deny (also when the decision failed closed), 2 on bad usage,
so scripts can test it.`,
		Args: args(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *client.Client, p printer, a []string) error {
		r.Action = a[0]
		d, err := c.Authorize(ctx, r)
		if err != nil {
			return err
		}
		if err := p.print(d, func(t *table) {
			verdict, reason := "deny", d.Reason
			if d.Allow {
				verdict = "allow"
			}
			if d.Error != "" {
				reason += " (" + d.Error + ")"
			}
			t.row("DECISION", "REASON", "DECISION ID")
			t.row(verdict, reason, d.DecisionID)
		}); err != nil {
			return err
		}
		if !d.Allow {
			return errFailed
		}
		return nil
	})
	cmd.Flags().StringVar(&r.Scope, "scope", "/", "scope of the action")
	cmd.Flags().StringVar(&r.Subject, "subject", "", "principal to ask about (default: the caller; others need a decision client or an admin)")
	return cmd
}

func newAuditCmd() *cobra.Command {
	var af auditFilter
	cmd := apiCommand(&cobra.Command{
		Use:   "audit",
		Short: "Read the audit trail (everyone's for admins, your own otherwise)",
		Long: `Read the audit trail, oldest first: everyone's events for admins, your own
otherwise. 'audit export' writes it to a file, and 'audit verify' checks its
hash chain in such a file or on the server.`,
		Args: args(cobra.NoArgs),
	}, func(ctx context.Context, c *client.Client, p printer, _ []string) error {
		events, err := c.Audit(ctx, af.f)
		if err != nil {
			return err
		}
		return p.print(events, func(t *table) {
			t.row("TIME", "TYPE", "ACTOR", "PRINCIPAL", "ROLE", "SCOPE", "ID", "DETAIL")
			for _, e := range events {
				id := e.ActivationID
				if id == "" {
					id = e.AssignmentID
				}
				var detail []string
				if e.Reason != "" {
					detail = append(detail, e.Reason)
				}
				detail = append(detail, e.Violations...)
				if e.Justification != "" {
					detail = append(detail, strconv.Quote(e.Justification))
				}
				t.row(ts(&e.Time), string(e.Type), e.Actor, e.Principal, e.Role, e.Scope, id, strings.Join(detail, "; "))
			}
		})
	})
	af.flags(cmd)
	cmd.Flags().IntVar(&af.f.Limit, "limit", 0, "at most this many events (the oldest first)")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Flags().Changed("limit") && af.f.Limit < 1 {
			return usageError{fmt.Errorf("--limit %d: give a positive number", af.f.Limit)}
		}
		return af.parse()
	}
	cmd.AddCommand(newAuditExportCmd(), newAuditVerifyCmd())
	return cmd
}

// auditFilter is the filter flags of audit and audit export.
type auditFilter struct {
	f                 audit.Filter
	typ, since, until string
}

func (af *auditFilter) flags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&af.f.Principal, "principal", "", "only events about this principal")
	fl.StringVar(&af.f.Role, "role", "", "only events about this role")
	fl.StringVar(&af.typ, "type", "", "only events of this type, such as activation.approved")
	fl.StringVar(&af.since, "since", "", "only events at or after this RFC 3339 time")
	fl.StringVar(&af.until, "until", "", "only events before this RFC 3339 time")
}

func (af *auditFilter) parse() error {
	af.f.Type = audit.Type(af.typ)
	from, err := parseTime("since", af.since)
	if err != nil {
		return err
	}
	to, err := parseTime("until", af.until)
	if err != nil {
		return err
	}
	if from != nil {
		af.f.Since = *from
	}
	if to != nil {
		af.f.Until = *to
	}
	return nil
}

// filtered reports whether any filter is set: such an export leaves events
// out, so its chain cannot verify.
func (af *auditFilter) filtered() bool {
	return af.f.Principal != "" || af.f.Role != "" || af.f.Type != "" || af.since != "" || af.until != ""
}

// serverFlags are --server and --token alone, for the audit subcommands,
// whose -o is not the output format of the other commands.
func (c *conn) serverFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.server, "server", defaultServer, "Elevate server URL (env "+envServer+")")
	f.StringVar(&c.token, "token", "", "bearer token (env "+envToken+"; prefer it: flags show in the process list)")
}

func newAuditExportCmd() *cobra.Command {
	var af auditFilter
	var cn conn
	var format, file string
	cmd := &cobra.Command{
		Use:   "export [--format jsonl|json|csv] [-o FILE]",
		Short: "Write the audit trail to a file, page by page",
		Long: `Write the whole audit trail (or, with filters, the events passing them) to
FILE, or to standard output. jsonl has one event per line, after a line
{"anchor":...} when old events were trimmed; json is one object with
"events" (and "anchor"); csv is for spreadsheets. A jsonl or json export of
the whole trail can be checked with 'elevate audit verify FILE'; a filtered
one leaves events out and cannot. FILE is written only once complete.`,
		Args: args(cobra.NoArgs),
		PreRunE: func(*cobra.Command, []string) error {
			if err := oneOf("format", audit.Format(format), audit.Formats...); err != nil {
				return err
			}
			return af.parse()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, _, err := cn.client(cmd)
			if err != nil {
				return err
			}
			if af.filtered() {
				fmt.Fprintln(cmd.ErrOrStderr(), "elevate: note: a filtered export leaves events out: it will not verify")
			}
			return explain(cmd.ErrOrStderr(), exportAudit(cmd, cl, af.f, audit.Format(format), file))
		},
	}
	cn.serverFlags(cmd)
	af.flags(cmd)
	cmd.Flags().StringVar(&format, "format", string(audit.JSONL), "jsonl, json or csv")
	cmd.Flags().StringVarP(&file, "output", "o", "", "write to FILE (default: standard output)")
	return cmd
}

// exportAudit writes the events passing f to file (standard output when
// ""). A file is written beside its final name and renamed into place, so
// a failed export never leaves a partial file that looks whole.
func exportAudit(cmd *cobra.Command, cl *client.Client, f audit.Filter, format audit.Format, file string) (err error) {
	out := cmd.OutOrStdout()
	if file != "" {
		dir, base := filepath.Split(file)
		tmp, cerr := os.CreateTemp(dir, "."+base+".*.tmp") // mode 0600: the trail names people
		if cerr != nil {
			return fmt.Errorf("export: %w", cerr)
		}
		defer func() {
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp.Name(), file)
			}
			if err != nil {
				_ = os.Remove(tmp.Name())
			}
		}()
		out = tmp
	}
	var x *audit.ExportWriter
	var n int
	var first, last int64
	err = cl.AuditPages(cmd.Context(), f, func(p client.AuditPage) error {
		if x == nil {
			var err error
			if x, err = audit.NewExportWriter(out, format, p.Anchor); err != nil {
				return err
			}
		}
		if len(p.Events) > 0 {
			if n == 0 {
				first = p.Events[0].Seq
			}
			last = p.Events[len(p.Events)-1].Seq
			n += len(p.Events)
		}
		return x.Write(p.Events...)
	})
	if err != nil {
		return err
	}
	if err := x.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if file != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "elevate: exported %s to %s\n", span(n, first, last), file)
	}
	return nil
}

// span is "N events, seq A..B".
func span(n int, first, last int64) string {
	if n == 0 {
		return "0 events"
	}
	return fmt.Sprintf("%d events, seq %d..%d", n, first, last)
}

func newAuditVerifyCmd() *cobra.Command {
	var cn conn
	cmd := &cobra.Command{
		Use:   "verify [FILE | --server URL]",
		Short: "Check the audit trail's hash chain, in an export or on the server",
		Long: `Recompute the audit trail's hash chain from a jsonl or json export (FILE), or
from the whole trail on the server (with no FILE; it needs an admin's token,
since anyone else reads only their own events). Prints "ok: N events, seq
A..B", or the first bad event and what is wrong with it (altered, removed or
reordered) and exits 1. It cannot tell that the newest events were cut off:
compare the last seq and hash with ones you kept.`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) == 1 {
				if cmd.Flags().Changed("server") || cmd.Flags().Changed("token") {
					return usageError{errors.New("give FILE or --server, not both: a file is verified without a server")}
				}
				return verifyAuditFile(cmd.OutOrStdout(), a[0])
			}
			cl, _, err := cn.client(cmd)
			if err != nil {
				return err
			}
			return explain(cmd.ErrOrStderr(), verifyAuditServer(cmd, cl))
		},
	}
	cn.serverFlags(cmd)
	return cmd
}

func verifyAuditFile(out io.Writer, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	x, err := audit.ReadExport(f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var ce *audit.ChainError
	switch err := x.Verify(); {
	case errors.As(err, &ce):
		where := fmt.Sprintf("event %d of %s", ce.Index+1, file)
		if x.Lines != nil {
			where = fmt.Sprintf("line %d of %s", x.Lines[ce.Index], file)
		}
		fmt.Fprintf(out, "broken at seq %d (%s): %s: %s\n", ce.Seq, where, ce.Problem, clean(ce.Detail))
		return errFailed
	case err != nil:
		return fmt.Errorf("%s: %w", file, err)
	}
	n := len(x.Events)
	var first, last int64
	if n > 0 {
		first, last = x.Events[0].Seq, x.Events[n-1].Seq
	}
	fmt.Fprintf(out, "ok: %s%s\n", span(n, first, last), anchored(x.Anchor))
	return nil
}

// verifyAuditServer verifies the whole trail as the server pages it out,
// one page in memory at a time. It sends no filter: a filtered trail
// leaves events out and cannot verify.
func verifyAuditServer(cmd *cobra.Command, cl *client.Client) error {
	var v *audit.Verifier
	var anchor *audit.Anchor
	err := cl.AuditPages(cmd.Context(), audit.Filter{}, func(p client.AuditPage) error {
		if v == nil {
			var err error
			anchor = p.Anchor
			if v, err = audit.NewVerifier(anchor); err != nil {
				return err
			}
		}
		for _, e := range p.Events {
			if err := v.Next(e); err != nil {
				return err
			}
		}
		return nil
	})
	var ce *audit.ChainError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(cmd.OutOrStdout(), "broken at seq %d (event %d from the server): %s: %s\n", ce.Seq, ce.Index+1, ce.Problem, clean(ce.Detail))
		fmt.Fprintln(cmd.ErrOrStderr(), "elevate: note: only admins read the whole trail; anyone else's events alone do not chain")
		return errFailed
	case err != nil:
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "ok: %s%s\n", span(v.Count(), v.First(), v.Head().Seq), anchored(anchor))
	return nil
}

func anchored(a *audit.Anchor) string {
	if a == nil || a.IsZero() {
		return ""
	}
	return fmt.Sprintf(" (anchored at seq %d)", a.Seq)
}

func newTOTPCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "totp",
		Short: "Enrol in TOTP, invite or reset others, or compute a code",
	}
	cmd.AddCommand(newTOTPEnrollCmd(), newTOTPInviteCmd(), newTOTPResetCmd(), newTOTPCodeCmd())
	return cmd
}

func newTOTPEnrollCmd() *cobra.Command {
	var current, invite string
	cmd := apiCommand(&cobra.Command{
		Use:   "enroll",
		Short: "Get a new TOTP secret (printed this once)",
		Long: `Get a new TOTP secret for your authenticator app. The secret and its
otpauth:// URL are printed this once and kept nowhere else you can read. A
first enrolment needs the single-use invite an administrator issued to you
(elevate totp invite) in --invite. If you are already enrolled, prove it with
--totp and the current code instead; the old secret stops working at once.`,
		Args: args(cobra.NoArgs),
	}, func(ctx context.Context, c *client.Client, p printer, _ []string) error {
		en, err := c.EnrollTOTP(ctx, workflow.EnrollRequest{Invite: invite, TOTP: current})
		if err != nil {
			return err
		}
		if !p.json {
			fmt.Fprintln(p.note, "elevate: this secret is shown once: add it to your authenticator app now")
		}
		return p.print(en, func(t *table) {
			t.row("secret", en.Secret)
			t.row("url", en.URL)
		})
	})
	cmd.Flags().StringVar(&current, "totp", "", "current TOTP code, when already enrolled")
	cmd.Flags().StringVar(&invite, "invite", "", "enrolment invite an administrator issued to you")
	return cmd
}

func newTOTPInviteCmd() *cobra.Command {
	return apiCommand(&cobra.Command{
		Use:   "invite PRINCIPAL",
		Short: "Issue a single-use TOTP enrolment invite (printed this once)",
		Long: `Issue a single-use TOTP enrolment invite for PRINCIPAL, as an administrator
(mfa.manage). Hand the code to the principal out of band; they enrol with
elevate totp enroll --invite CODE before it expires. A newer invite replaces
an older one. Nobody may invite themselves.`,
		Args: args(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *client.Client, p printer, a []string) error {
		inv, err := c.InviteTOTP(ctx, a[0])
		if err != nil {
			return err
		}
		if !p.json {
			fmt.Fprintln(p.note, "elevate: this invite is shown once: hand it to "+inv.Principal+" out of band")
		}
		return p.print(inv, func(t *table) {
			t.row("principal", inv.Principal)
			t.row("invite", inv.Code)
			t.row("expires", inv.ExpiresAt.Format(time.RFC3339))
		})
	})
}

func newTOTPResetCmd() *cobra.Command {
	return apiCommand(&cobra.Command{
		Use:   "reset PRINCIPAL",
		Short: "Remove a principal's TOTP secret",
		Long: `Remove PRINCIPAL's TOTP secret, as an administrator (mfa.manage), e.g. when
their device is lost. They enrol again with an invite (elevate totp invite).
Nobody may reset themselves.`,
		Args: args(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *client.Client, p printer, a []string) error {
		if err := c.ResetTOTP(ctx, a[0]); err != nil {
			return err
		}
		out := map[string]any{"principal": a[0], "reset": true}
		return p.print(out, func(t *table) {
			t.row("principal", a[0])
			t.row("reset", "yes")
		})
	})
}

func newTOTPCodeCmd() *cobra.Command {
	var secret string
	cmd := &cobra.Command{
		Use:   "code",
		Short: "Print the current TOTP code of a secret (offline)",
		Long: `Print the current 6-digit TOTP code of a base32 secret, as an authenticator
app would: for demos and scripts. No server is asked. Prefer the environment
variable ` + envTOTPSecret + ` to --secret, which shows in the process list.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("secret") {
				secret = os.Getenv(envTOTPSecret)
			}
			if strings.TrimSpace(secret) == "" {
				return usageError{fmt.Errorf("no secret: give --secret or set %s", envTOTPSecret)}
			}
			code, err := totp.GenerateCode(secret, time.Now())
			if err != nil {
				// Not err itself, and not the secret: only say what is wrong.
				return usageError{errors.New("the secret is not base32 (letters A-Z and digits 2-7)")}
			}
			fmt.Fprintln(cmd.OutOrStdout(), code)
			return nil
		},
	}
	cmd.Flags().StringVar(&secret, "secret", "", "base32 TOTP secret (env "+envTOTPSecret+")")
	return cmd
}

func newDemoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Print a demo principal's token or TOTP code",
		Long: `Read the demo credentials that 'elevate serve --demo --demo-credentials FILE'
writes, and print one demo principal's token or current TOTP code. WHO is the
start of a principal's name (sophia, perparim, emma, alex) or a decision
client's (gateway; token only).`,
	}
	cmd.AddCommand(
		newDemoSecretCmd("token", "Print the bearer token of a demo principal or client", func(c demoCreds) (string, error) {
			return c.token, nil
		}),
		newDemoSecretCmd("totp", "Print the current TOTP code of a demo principal", func(c demoCreds) (string, error) {
			if c.totpSecret == "" {
				return "", usageError{fmt.Errorf("%s is a decision client: it has no TOTP", c.name)}
			}
			code, err := totp.GenerateCode(c.totpSecret, time.Now())
			if err != nil {
				return "", fmt.Errorf("the TOTP secret of %s is not base32", c.name)
			}
			return code, nil
		}),
	)
	return cmd
}

func newDemoSecretCmd(use, short string, pick func(demoCreds) (string, error)) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   use + " WHO",
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := findDemo(file, a[0])
			if err != nil {
				return err
			}
			out, err := pick(c)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", defaultDemoFile, "demo credentials file (elevate serve --demo-credentials)")
	return cmd
}

// demoCreds are one demo principal's or client's credentials.
type demoCreds struct {
	name, token, totpSecret string
}

// findDemo reads the credentials file and finds the one principal or
// client whose name starts with who.
func findDemo(file, who string) (demoCreds, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return demoCreds{}, fmt.Errorf("read demo credentials (written by elevate serve --demo --demo-credentials %s): %w", file, err)
	}
	var all demo.Credentials
	if err := json.Unmarshal(raw, &all); err != nil {
		return demoCreds{}, fmt.Errorf("%s is not a demo credentials file: %w", file, err)
	}
	who = strings.ToLower(strings.TrimSpace(who))
	var found []demoCreds
	var names []string
	for _, p := range all.Principals {
		names = append(names, p.Principal)
		if who != "" && (strings.HasPrefix(p.Principal, who) || strings.HasPrefix(strings.ToLower(p.Name), who)) {
			found = append(found, demoCreds{name: p.Principal, token: p.Token, totpSecret: p.TOTPSecret})
		}
	}
	for _, c := range all.Clients {
		names = append(names, c.Name)
		if who != "" && strings.HasPrefix(strings.ToLower(c.Name), who) {
			found = append(found, demoCreds{name: c.Name, token: c.Token})
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return demoCreds{}, usageError{fmt.Errorf("no demo principal or client %q in %s: use the start of one of %s", who, file, strings.Join(names, ", "))}
	}
	matched := make([]string, len(found))
	for i, f := range found {
		matched[i] = f.name
	}
	return demoCreds{}, usageError{fmt.Errorf("%q matches %s: give more of the name", who, strings.Join(matched, ", "))}
}
