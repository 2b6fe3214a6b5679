-- Argo CD health of a Modelship ModelDeployment (modelship.io/v1alpha1),
-- read from the status the operator writes; the operator never writes spec.
--   Healthy      the Ready condition is True for the object's current generation
--   Degraded     not Ready, and the operator reports a failure: phase Failed or
--                Degraded, or ModelLoaded False (the servers cannot load the model)
--   Progressing  anything else, including a status older than the latest spec
-- Written for Argo CD's Lua 5.1 sandbox; runs after health-common.lua.
local verdict, ready = common_verdict(obj, "The model is serving")
if verdict ~= nil then
  return verdict
end
local status = obj.status
local hs = {}

local loaded = find_condition(status, "ModelLoaded")
if status.phase == "Failed" or status.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = describe(ready, loaded, "Phase " .. status.phase)
  return hs
end
if loaded ~= nil and loaded.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(loaded, ready, "The model could not be loaded")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, nil, "Waiting for the model to become ready")
return hs
