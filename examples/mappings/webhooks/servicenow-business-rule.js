// ServiceNow business rule for deskwatch (System Definition → Business Rules):
//   Table: Incident [incident]; When: after; Insert and Update checked; Advanced: this script.
// Store deskwatch's ingest token in the system property `deskwatch.token` and its URL in
// `deskwatch.url` (e.g. https://deskwatch.example.com). Display values are sent, as the
// mapping servicenow.toml reads them.
(function executeRule(current, previous /*null when async*/) {
    var journal = '';
    if (current.comments.changes()) {
        journal = 'comments';
    } else if (current.work_notes.changes()) {
        journal = 'work_notes';
    }
    var body = {
        sys_id: current.getUniqueValue(),
        sys_mod_count: current.getValue('sys_mod_count'),
        number: current.getValue('number'),
        sys_updated_on: current.getValue('sys_updated_on'),
        sys_updated_by: current.getValue('sys_updated_by'),
        state: current.getDisplayValue('state'),
        // Only while on hold: the reason refines the status.
        hold_reason: current.getValue('state') == '3' ? current.getDisplayValue('hold_reason') : '',
        priority: current.getDisplayValue('priority'),
        contact_type: current.getDisplayValue('contact_type'),
        category: current.getDisplayValue('category'),
        subcategory: current.getDisplayValue('subcategory'),
        cmdb_ci: current.getDisplayValue('cmdb_ci'),
        business_service: current.getDisplayValue('business_service'),
        company: current.getDisplayValue('company'),
        caller_id: current.getDisplayValue('caller_id'),
        short_description: current.getValue('short_description'),
        description: current.getValue('description'),
        assignment_group: current.getDisplayValue('assignment_group'),
        assigned_to: current.getDisplayValue('assigned_to'),
        close_code: current.getDisplayValue('close_code'),
        journal: journal,
        // Desk staff hold the itil role; a caller commenting through the portal does not.
        journal_by_agent: journal ? String(gs.hasRole('itil')) : ''
    };
    var r = new sn_ws.RESTMessageV2();
    r.setEndpoint(gs.getProperty('deskwatch.url') + '/v1/hooks/servicenow');
    r.setHttpMethod('post');
    r.setRequestHeader('Content-Type', 'application/json');
    r.setRequestHeader('Authorization', 'Bearer ' + gs.getProperty('deskwatch.token'));
    r.setRequestBody(JSON.stringify(body));
    // Sent from the ECC queue: the update does not wait for deskwatch.
    r.executeAsync();
})(current, previous);
