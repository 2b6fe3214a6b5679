-- Argo CD health of a Modelship ModelEnsemble (modelship.io/v1alpha1),
-- read from the status the operator writes; the operator never writes spec.
--   Healthy      the Ready condition is True for the object's current generation
--   Degraded     not Ready, and the operator reports a failure: phase Failed or
--                Degraded (a member cannot serve, or the router cannot start)
--   Progressing  anything else, including a status older than the latest spec
-- Written for Argo CD's Lua 5.1 sandbox; runs after health-common.lua.
local verdict, ready = common_verdict(obj, "The ensemble is serving")
if verdict ~= nil then
  return verdict
end
local status = obj.status
local hs = {}

if status.phase == "Failed" or status.phase == "Degraded" then
  hs.status = "Degraded"
  local members = find_condition(status, "MembersReady")
  hs.message = describe(ready, members, "Phase " .. status.phase)
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, find_condition(status, "MembersReady"),
  "Waiting for the ensemble's members to become ready")
return hs
