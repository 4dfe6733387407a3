package jirasim

// The fixed catalogue: statuses, issue types, priorities and resolutions with
// the ids a fresh Jira Data Center 9 installation uses.

type statusDef struct {
	ID, Name, Desc string
	Category       int // 2 new, 4 indeterminate, 3 done
}

var statuses = []statusDef{
	{"1", "Open", "The issue is open and ready for the assignee to start work on it.", 2},
	{"3", "In Progress", "This issue is being actively worked on at the moment by the assignee.", 4},
	{"4", "Reopened", "This issue was once resolved, but the resolution was deemed incorrect.", 2},
	{"5", "Resolved", "A resolution has been taken, and it is awaiting verification by reporter.", 3},
	{"6", "Closed", "The issue is considered finished, the resolution is correct.", 3},
	{"10000", "To Do", "", 2},
	{"10001", "Done", "", 3},
	{"10002", "In Review", "", 4},
}

type categoryDef struct {
	ID               int
	Key, Color, Name string
}

var categories = map[int]categoryDef{
	1: {1, "undefined", "medium-gray", "No Category"},
	2: {2, "new", "blue-gray", "To Do"},
	3: {3, "done", "green", "Done"},
	4: {4, "indeterminate", "yellow", "In Progress"},
}

type issueTypeDef struct {
	ID, Name, Desc string
	Subtask        bool
	Avatar         int
}

var issueTypes = []issueTypeDef{
	{"10000", "Epic", "Created by Jira Software - do not edit or delete. Issue type for a big user story that needs to be broken down.", false, 10307},
	{"10001", "Story", "Created by Jira Software - do not edit or delete. Issue type for a user story.", false, 10315},
	{"10002", "Task", "A task that needs to be done.", false, 10318},
	{"10003", "Sub-task", "The sub-task of the issue", true, 10316},
	{"10004", "Bug", "A problem which impairs or prevents the functions of the product.", false, 10303},
}

type nameDef struct{ ID, Name, Desc, Color string }

var priorities = []nameDef{
	{"1", "Highest", "This problem will block progress.", "#d04437"},
	{"2", "High", "Serious problem that could block progress.", "#f15C75"},
	{"3", "Medium", "Has the potential to affect progress.", "#f79232"},
	{"4", "Low", "Minor problem or easily worked around.", "#707070"},
	{"5", "Lowest", "Trivial problem with little or no impact on progress.", "#999999"},
}

var resolutions = []nameDef{
	{"10000", "Done", "Work has been completed on this issue.", ""},
	{"10001", "Won't Do", "This issue won't be actioned.", ""},
	{"10002", "Duplicate", "The problem is a duplicate of an existing issue.", ""},
	{"10003", "Cannot Reproduce", "All attempts at reproducing this issue failed.", ""},
}

var defaultLinkTypes = []linkType{
	{"10000", "Blocks", "is blocked by", "blocks"},
	{"10001", "Cloners", "is cloned by", "clones"},
	{"10002", "Duplicate", "is duplicated by", "duplicates"},
	{"10003", "Relates", "relates to", "relates to"},
}

// Permission keys jirasim answers for in mypermissions and enforces.
const (
	permBrowse          = "BROWSE_PROJECTS"
	permCreate          = "CREATE_ISSUES"
	permEdit            = "EDIT_ISSUES"
	permTransition      = "TRANSITION_ISSUES"
	permAdminProject    = "ADMINISTER_PROJECTS"
	permAddComments     = "ADD_COMMENTS"
	permEditOwnComments = "EDIT_OWN_COMMENTS"
	permEditAllComments = "EDIT_ALL_COMMENTS"
	permDelOwnComments  = "DELETE_OWN_COMMENTS"
	permDelAllComments  = "DELETE_ALL_COMMENTS"
	permCreateAttach    = "CREATE_ATTACHMENTS"
	permDelOwnAttach    = "DELETE_OWN_ATTACHMENTS"
	permDelAllAttach    = "DELETE_ALL_ATTACHMENTS"
	permManageWatchers  = "MANAGE_WATCHERS"
	permLink            = "LINK_ISSUES"
	permDelete          = "DELETE_ISSUES"
	permAssign          = "ASSIGN_ISSUES"
	permResolve         = "RESOLVE_ISSUES"
	permModifyReporter  = "MODIFY_REPORTER"
	permAssignable      = "ASSIGNABLE_USER"
)

// permissionNames gives the display name and type of each permission for mypermissions.
var permissionNames = map[string]string{
	permBrowse:          "Browse Projects",
	permCreate:          "Create Issues",
	permEdit:            "Edit Issues",
	permTransition:      "Transition Issues",
	permAdminProject:    "Administer Projects",
	permAddComments:     "Add Comments",
	permEditOwnComments: "Edit Own Comments",
	permEditAllComments: "Edit All Comments",
	permDelOwnComments:  "Delete Own Comments",
	permDelAllComments:  "Delete All Comments",
	permCreateAttach:    "Create Attachments",
	permDelOwnAttach:    "Delete Own Attachments",
	permDelAllAttach:    "Delete All Attachments",
	permManageWatchers:  "Manage Watchers",
	permLink:            "Link Issues",
	permDelete:          "Delete Issues",
	permAssign:          "Assign Issues",
	permResolve:         "Resolve Issues",
	permModifyReporter:  "Modify Reporter",
	permAssignable:      "Assignable User",
}

// defaultPerms mirrors Jira's "Default Permission Scheme": most permissions
// go to any logged-in user with application access, the dangerous ones to
// the Administrators project role.
func defaultPerms() map[string][]string {
	all := []string{"loggedin"}
	admins := []string{"role:Administrators"}
	return map[string][]string{
		permBrowse:          all,
		permCreate:          all,
		permEdit:            all,
		permTransition:      all,
		permAdminProject:    admins,
		permAddComments:     all,
		permEditOwnComments: all,
		permEditAllComments: admins,
		permDelOwnComments:  all,
		permDelAllComments:  admins,
		permCreateAttach:    all,
		permDelOwnAttach:    all,
		permDelAllAttach:    admins,
		permManageWatchers:  admins,
		permLink:            all,
		permDelete:          admins,
		permAssign:          all,
		permResolve:         all,
		permModifyReporter:  admins,
		permAssignable:      all,
	}
}

// permissionIDs are Jira's legacy numeric permission ids, which
// mypermissions still reports.
var permissionIDs = map[string]string{
	permBrowse: "10", permCreate: "11", permEdit: "12", permAssign: "13", permResolve: "14", permAddComments: "15",
	permDelete: "16", permAssignable: "17", permCreateAttach: "19", permLink: "21", permAdminProject: "23",
	permModifyReporter: "30", permManageWatchers: "32", permEditAllComments: "34", permEditOwnComments: "35",
	permDelAllComments: "36", permDelOwnComments: "37", permDelAllAttach: "38", permDelOwnAttach: "39",
	permTransition: "46",
}

var roleIDs = map[string]string{
	"Users":          "10000",
	"Developers":     "10001",
	"Administrators": "10002",
}

func statusByID(id string) (statusDef, bool) {
	for _, s := range statuses {
		if s.ID == id {
			return s, true
		}
	}
	return statusDef{}, false
}

func issueTypeByID(id string) (issueTypeDef, bool) {
	for _, t := range issueTypes {
		if t.ID == id {
			return t, true
		}
	}
	return issueTypeDef{}, false
}

func nameDefByID(list []nameDef, id string) (nameDef, bool) {
	for _, d := range list {
		if d.ID == id {
			return d, true
		}
	}
	return nameDef{}, false
}

// defaultWorkflow is the per-project workflow of a fresh project: To Do, In
// Progress, Done, with "Done" reachable from everywhere as a global transition.
func defaultWorkflow() *workflow {
	return &workflow{
		Name:     "jirasim default workflow",
		Initial:  "10000",
		Statuses: []string{"10000", "3", "10001"},
		Transitions: []transition{
			{ID: "11", Name: "Start Progress", From: []string{"10000"}, To: "3"},
			{ID: "21", Name: "Stop Progress", From: []string{"3"}, To: "10000"},
			{ID: "31", Name: "Done", From: nil, To: "10001"},
			{ID: "41", Name: "Reopen", From: []string{"10001"}, To: "10000"},
		},
	}
}
