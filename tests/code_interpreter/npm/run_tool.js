// Runs LibreChat's code tools from @librechat/agents against LIBRECHAT_CODE_BASEURL, then fetches
// each generated file exactly as LibreChat's processCodeOutput does. Input: a JSON list of steps on
// stdin; output: one JSON object with what the tools returned and what the downloads held.
// AGENTS_PACKAGE picks the client: "@librechat/agents" (v0.8.7's 3.2.57) or "agents-v088" (3.9.x).
// A step with "profile" builds the tool as LibreChat v0.8.8 does for that execution profile
// (packages/api/src/agents/execution.ts resolveCodeExecutionContext): the stateful one at
// LIBRECHAT_CODE_BASEURL_STATEFUL, with its runtime session hint. RUN_PARALLEL=1 starts every
// step at once (each after its own "delay_ms").
'use strict';

const axios = require('axios');
const { createCodeExecutionTool, createBashExecutionTool } = require(
  process.env.AGENTS_PACKAGE || '@librechat/agents',
);

const defaultBaseURL = process.env.LIBRECHAT_CODE_BASEURL;
const statefulBaseURL = process.env.LIBRECHAT_CODE_BASEURL_STATEFUL;
const userId = process.env.LIBRECHAT_USER_ID;
// What LibreChat's getCodeApiAuthHeaders adds when CODEAPI_* JWT auth is on.
const authHeaders = process.env.CODE_API_AUTHORIZATION
  ? { Authorization: process.env.CODE_API_AUTHORIZATION }
  : undefined;

function profileParams(step) {
  if (!step.profile) return {};
  const stateful = step.profile === 'stateful';
  return {
    baseUrl: stateful ? statefulBaseURL : defaultBaseURL,
    executionProfile: step.profile,
    statefulSessions: stateful,
    ...(stateful ? { runtimeSessionHint: step.hint } : {}),
  };
}

async function runStep(step, index) {
  if (step.delay_ms) await new Promise((resolve) => setTimeout(resolve, step.delay_ms));
  const params = { authHeaders, ...profileParams(step) };
  const tool =
    step.tool === 'bash_tool'
      ? createBashExecutionTool(params)
      : createCodeExecutionTool({ user_id: userId, ...params });
  const baseURL = params.baseUrl || defaultBaseURL;
  const profileHeader = step.profile ? { 'X-CodeAPI-Expected-Profile': step.profile } : {};
  const message = await tool.invoke({
    id: `call_${index}`,
    name: tool.name,
    args: step.args,
    type: 'tool_call',
  });
  const artifact = message.artifact ?? {};
  const downloads = [];
  for (const file of artifact.files ?? []) {
    if (file.inherited) continue;
    const sessionId = file.storage_session_id ?? artifact.session_id;
    const response = await axios({
      method: 'get',
      url: `${baseURL}/download/${sessionId}/${file.id}?kind=user&id=${userId}`,
      responseType: 'arraybuffer',
      headers: { 'User-Agent': 'LibreChat/1.0', ...(authHeaders ?? {}), ...profileHeader },
      timeout: 15000,
    });
    downloads.push({
      name: file.name,
      status: response.status,
      contentType: response.headers['content-type'],
      contentDisposition: response.headers['content-disposition'],
      executionProfile: response.headers['x-codeapi-execution-profile'],
      base64: Buffer.from(response.data, 'binary').toString('base64'),
    });
  }
  return { tool: tool.name, content: message.content, artifact, downloads };
}

async function settle(step, index) {
  try {
    return await runStep(step, index);
  } catch (error) {
    return { error: String(error && error.message ? error.message : error) };
  }
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const steps = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  let results = [];
  if (process.env.RUN_PARALLEL === '1') {
    results = await Promise.all(steps.map((step, index) => settle(step, index)));
  } else {
    for (const [index, step] of steps.entries()) results.push(await settle(step, index));
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
