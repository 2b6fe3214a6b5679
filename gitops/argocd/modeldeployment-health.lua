-- Argo CD health of a Modelship ModelDeployment (modelship.io/v1alpha1),
-- read from the status the operator writes; the operator never writes spec.
--   Healthy      the Ready condition is True for the object's current generation
--   Degraded     not Ready, and the operator reports a failure: phase Failed or
--                Degraded, or ModelLoaded False (the servers cannot load the model)
--   Progressing  anything else, including a status older than the latest spec
-- Written for Argo CD's Lua 5.1 sandbox: no libraries beyond string formatting.
local hs = {}

local function find_condition(status, wanted)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == wanted then
      return condition
    end
  end
  return nil
end

-- The first message the conditions carry, else the first reason, else fallback.
local function describe(first, second, fallback)
  for _, field in ipairs({"message", "reason"}) do
    if first ~= nil and first[field] ~= nil and first[field] ~= "" then
      return first[field]
    end
    if second ~= nil and second[field] ~= nil and second[field] ~= "" then
      return second[field]
    end
  end
  return fallback
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Modelship operator to report a status"
  return hs
end

-- A status written for an older spec says nothing about the current one.
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = string.format("Waiting for the operator to act on generation %d", generation)
  return hs
end

local ready = find_condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  local computed = ready.observedGeneration
  if generation ~= nil and computed ~= nil and computed < generation then
    hs.status = "Progressing"
    hs.message = string.format("Ready was last computed for generation %d", computed)
    return hs
  end
  hs.status = "Healthy"
  hs.message = describe(ready, nil, "The model is serving")
  return hs
end

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
