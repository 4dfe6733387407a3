package jirasim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

type commentInput struct {
	Body       *string         `json:"body"`
	Visibility *visibility     `json:"visibility"`
	Properties []propertyInput `json:"properties"`
}

// addComment stores a comment, bumps the issue's updated and fires comment_created.
func (s *Server) addComment(c *reqCtx, is *issue, body string, vis *visibility, props []propertyInput) *comment {
	now := s.now()
	cm := &comment{ID: s.st.nextID("comment"), Issue: is.ID, Author: c.user.Name, UpdAuthor: c.user.Name, Body: body,
		Created: now, Updated: now, Visibility: vis}
	for _, p := range props {
		setProperty(&cm.Props, p.Key, p.Value)
	}
	s.st.Comments[cm.ID] = cm
	is.Updated = now
	if !slices.Contains(is.Watchers, c.user.Name) {
		is.Watchers = append(is.Watchers, c.user.Name)
	}
	s.fireComment(c, is, cm, "created")
	return cm
}

func (s *Server) checkVisibility(c *reqCtx, is *issue, v *visibility) error {
	if v == nil || (v.Type == "" && v.Value == "") {
		return nil
	}
	p := s.st.Projects[is.Project]
	switch v.Type {
	case "role":
		if _, ok := roleIDs[v.Value]; !ok {
			return errField(400, "commentLevel", fmt.Sprintf("You are currently not a member of the project role: %s.", v.Value))
		}
		if !p.inRole(c.user, v.Value) {
			return errField(400, "commentLevel", fmt.Sprintf("You are currently not a member of the project role: %s.", v.Value))
		}
	case "group":
		if !c.user.inGroup(v.Value) {
			return errField(400, "commentLevel", fmt.Sprintf("You are currently not a member of the group: %s.", v.Value))
		}
	default:
		return errField(400, "commentLevel", "Visibility type '"+v.Type+"' is not valid.")
	}
	return nil
}

// commentFor finds the comment in the path, checking the issue and visibility.
func (s *Server) commentFor(c *reqCtx, is *issue) (*comment, error) {
	id, _ := strconv.ParseInt(c.r.PathValue("id"), 10, 64)
	cm := s.st.Comments[id]
	if cm == nil || (is != nil && cm.Issue != is.ID) {
		return nil, errMsg(404, fmt.Sprintf("Can not find a comment for the id: %s.", c.r.PathValue("id")))
	}
	owner := s.st.Issues[cm.Issue]
	p := s.st.Projects[owner.Project]
	if !s.hasPerm(c.user, p, permBrowse, owner) || !s.canSeeComment(c.user, p, cm) {
		return nil, errMsg(404, fmt.Sprintf("Can not find a comment for the id: %s.", c.r.PathValue("id")))
	}
	return cm, nil
}

// commentChange is what a request does to an existing comment.
type commentChange int

const (
	commentRead commentChange = iota
	commentEdit
	commentDelete
)

// issueComment finds the comment {id} of the issue {key} (404 if the user
// cannot see either) and, for an edit or delete, checks that the user may
// make it.
func (s *Server) issueComment(c *reqCtx, change commentChange) (*issue, *comment, error) {
	is, err := s.issueFor(c, "")
	if err != nil {
		return nil, nil, err
	}
	cm, err := s.commentFor(c, is)
	if err != nil {
		return nil, nil, err
	}
	if err := s.mayChangeComment(c, is, cm, change); err != nil {
		return nil, nil, err
	}
	return is, cm, nil
}

// mayChangeComment answers 403 unless the user may edit or delete cm of
// is: Jira lets anyone with the "all comments" permission do it, and the
// author with the "own comments" one. Reading needs no more than seeing
// the comment, which commentFor checked.
func (s *Server) mayChangeComment(c *reqCtx, is *issue, cm *comment, change commentChange) error {
	var all, own, denied string
	switch change {
	case commentEdit:
		all, own, denied = permEditAllComments, permEditOwnComments, "You do not have the permission to edit this comment."
	case commentDelete:
		all, own, denied = permDelAllComments, permDelOwnComments, "You do not have permission to delete this comment."
	default:
		return nil
	}
	p := s.st.Projects[is.Project]
	if !s.hasPerm(c.user, p, all, is) && !(cm.Author == c.user.Name && s.hasPerm(c.user, p, own, is)) {
		return errMsg(403, denied)
	}
	return nil
}

// readCommentInput decodes a comment to create (bodyRequired) or edit
// (a missing body keeps the old one) and checks its body, visibility and
// properties the way Jira does, before anything is changed.
func (s *Server) readCommentInput(c *reqCtx, is *issue, bodyRequired bool) (commentInput, error) {
	var in commentInput
	if err := decode(c.r, &in); err != nil {
		return in, err
	}
	if (in.Body == nil && bodyRequired) || (in.Body != nil && strings.TrimSpace(*in.Body) == "") {
		return in, errField(400, "comment", "Comment body can not be empty!")
	}
	if err := s.checkVisibility(c, is, in.Visibility); err != nil {
		return in, err
	}
	if err := validProperties(in.Properties); err != nil {
		return in, err
	}
	return in, nil
}

func (s *Server) routesComments() {
	s.route("GET /rest/api/2/issue/{key}/comment", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		rendered := slices.Contains(expandList(c.r), "renderedBody")
		all := []any{}
		for _, cm := range s.visibleComments(c, is) {
			all = append(all, s.commentJSON(c, cm, rendered))
		}
		if c.r.URL.Query().Get("orderBy") == "-created" {
			slices.Reverse(all)
		}
		start, max := pageParams(c.r, 5000, 5000)
		writeJSON(c.w, 200, map[string]any{"startAt": start, "maxResults": max, "total": len(all), "comments": page(all, start, max)})
		return nil
	})
	s.route("POST /rest/api/2/issue/{key}/comment", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, permAddComments)
		if err != nil {
			return err
		}
		in, err := s.readCommentInput(c, is, true)
		if err != nil {
			return err
		}
		cm := s.addComment(c, is, *in.Body, normVisibility(in.Visibility), in.Properties)
		c.dirty = true
		writeJSON(c.w, 201, s.commentJSON(c, cm, slices.Contains(expandList(c.r), "renderedBody")))
		return nil
	})
	s.route("GET /rest/api/2/issue/{key}/comment/{id}", false, func(c *reqCtx) error {
		_, cm, err := s.issueComment(c, commentRead)
		if err != nil {
			return err
		}
		writeJSON(c.w, 200, s.commentJSON(c, cm, slices.Contains(expandList(c.r), "renderedBody")))
		return nil
	})
	s.route("PUT /rest/api/2/issue/{key}/comment/{id}", false, func(c *reqCtx) error {
		is, cm, err := s.issueComment(c, commentEdit)
		if err != nil {
			return err
		}
		in, err := s.readCommentInput(c, is, false)
		if err != nil {
			return err
		}
		now := s.now()
		if in.Body != nil {
			cm.Body = *in.Body
		}
		if in.Visibility != nil {
			cm.Visibility = normVisibility(in.Visibility)
		}
		for _, pr := range in.Properties {
			setProperty(&cm.Props, pr.Key, pr.Value)
		}
		cm.UpdAuthor, cm.Updated = c.user.Name, now
		is.Updated = now
		s.fireComment(c, is, cm, "updated")
		c.dirty = true
		writeJSON(c.w, 200, s.commentJSON(c, cm, slices.Contains(expandList(c.r), "renderedBody")))
		return nil
	})
	s.route("DELETE /rest/api/2/issue/{key}/comment/{id}", false, func(c *reqCtx) error {
		is, cm, err := s.issueComment(c, commentDelete)
		if err != nil {
			return err
		}
		delete(s.st.Comments, cm.ID)
		is.Updated = s.now()
		s.fireComment(c, is, cm, "deleted")
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})
	// Comment properties.
	s.route("GET /rest/api/2/comment/{id}/properties", false, func(c *reqCtx) error {
		cm, err := s.commentFor(c, nil)
		if err != nil {
			return err
		}
		writeJSON(c.w, 200, propertyKeys(c.base+"/rest/api/2/comment/"+idStr(cm.ID)+"/properties/", cm.Props))
		return nil
	})
	s.route("GET /rest/api/2/comment/{id}/properties/{prop}", false, func(c *reqCtx) error {
		cm, err := s.commentFor(c, nil)
		if err != nil {
			return err
		}
		k := c.r.PathValue("prop")
		v, ok := cm.Props[k]
		if !ok {
			return errMsg(404, fmt.Sprintf("The property with key '%s' does not exist.", k))
		}
		writeJSON(c.w, 200, map[string]any{"key": k, "value": v})
		return nil
	})
	s.route("PUT /rest/api/2/comment/{id}/properties/{prop}", false, func(c *reqCtx) error {
		cm, err := s.commentFor(c, nil)
		if err != nil {
			return err
		}
		if err := s.mayChangeComment(c, s.st.Issues[cm.Issue], cm, commentEdit); err != nil {
			return err
		}
		v, err := readPropertyValue(c.r)
		if err != nil {
			return err
		}
		status := setProperty(&cm.Props, c.r.PathValue("prop"), v)
		c.dirty = true
		writeJSON(c.w, status, nil)
		return nil
	})
	s.route("DELETE /rest/api/2/comment/{id}/properties/{prop}", false, func(c *reqCtx) error {
		cm, err := s.commentFor(c, nil)
		if err != nil {
			return err
		}
		if err := s.mayChangeComment(c, s.st.Issues[cm.Issue], cm, commentEdit); err != nil {
			return err
		}
		k := c.r.PathValue("prop")
		if _, ok := cm.Props[k]; !ok {
			return errMsg(404, fmt.Sprintf("The property with key '%s' does not exist.", k))
		}
		delete(cm.Props, k)
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})
}

// normVisibility treats an empty visibility object (go-jira always sends
// one) as none.
func normVisibility(v *visibility) *visibility {
	if v == nil || (v.Type == "" && v.Value == "") {
		return nil
	}
	return v
}

// fireComment raises both webhook events Jira raises for a comment: the
// issue event (jira:issue_updated with issue_commented and the comment)
// and the comment event (comment_created and so on).
func (s *Server) fireComment(c *reqCtx, is *issue, cm *comment, kind string) {
	typeName := map[string]string{"created": "issue_commented", "updated": "issue_comment_edited", "deleted": "issue_comment_deleted"}[kind]
	s.fire(c, is, "jira:issue_updated", typeName, nil, cm)
	s.fire(c, is, "comment_"+kind, typeName, nil, cm)
}
