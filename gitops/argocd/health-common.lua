-- Shared by the health scripts of Modelship's kinds: build-argocd-cm.py puts it in
-- front of each *-health.lua in argocd-cm, so every check Argo CD runs is one
-- self-contained script. Written for Argo CD's Lua 5.1 sandbox.

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

-- The verdicts every kind shares: no status yet, a status written for an older
-- spec, and Ready (saying `serving`). Returns the health table when one of them
-- applies, else nil and the Ready condition (nil when there is none).
local function common_verdict(obj, serving)
  local hs = {}
  local generation = nil
  if obj.metadata ~= nil then
    generation = obj.metadata.generation
  end
  local status = obj.status
  if status == nil then
    hs.status = "Progressing"
    hs.message = "Waiting for the Modelship operator to report a status"
    return hs, nil
  end

  -- A status written for an older spec says nothing about the current one.
  local observed = status.observedGeneration
  if generation ~= nil and (observed == nil or observed < generation) then
    hs.status = "Progressing"
    hs.message = string.format("Waiting for the operator to act on generation %d", generation)
    return hs, nil
  end

  local ready = find_condition(status, "Ready")
  if ready ~= nil and ready.status == "True" then
    local computed = ready.observedGeneration
    if generation ~= nil and computed ~= nil and computed < generation then
      hs.status = "Progressing"
      hs.message = string.format("Ready was last computed for generation %d", computed)
      return hs, ready
    end
    hs.status = "Healthy"
    hs.message = describe(ready, nil, serving)
    return hs, ready
  end
  return nil, ready
end
