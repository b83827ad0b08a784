// Runs LibreChat's code tools from @librechat/agents against LIBRECHAT_CODE_BASEURL, then fetches
// each generated file exactly as LibreChat's processCodeOutput does. Input: a JSON list of steps on
// stdin; output: one JSON object with what the tools returned and what the downloads held.
'use strict';

const axios = require('axios');
const { createCodeExecutionTool, createBashExecutionTool } = require('@librechat/agents');

const baseURL = process.env.LIBRECHAT_CODE_BASEURL;
const userId = process.env.LIBRECHAT_USER_ID;
// What LibreChat's getCodeApiAuthHeaders adds when CODEAPI_* JWT auth is on.
const authHeaders = process.env.CODE_API_AUTHORIZATION
  ? { Authorization: process.env.CODE_API_AUTHORIZATION }
  : undefined;

async function runStep(step, index) {
  const tool =
    step.tool === 'bash_tool'
      ? createBashExecutionTool({ authHeaders })
      : createCodeExecutionTool({ user_id: userId, authHeaders });
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
      headers: { 'User-Agent': 'LibreChat/1.0', ...(authHeaders ?? {}) },
      timeout: 15000,
    });
    downloads.push({
      name: file.name,
      status: response.status,
      contentType: response.headers['content-type'],
      contentDisposition: response.headers['content-disposition'],
      base64: Buffer.from(response.data, 'binary').toString('base64'),
    });
  }
  return { tool: tool.name, content: message.content, artifact, downloads };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const steps = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const results = [];
  for (const [index, step] of steps.entries()) {
    try {
      results.push(await runStep(step, index));
    } catch (error) {
      results.push({ error: String(error && error.message ? error.message : error) });
    }
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
