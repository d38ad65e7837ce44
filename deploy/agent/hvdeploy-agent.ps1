<#
.SYNOPSIS
    hvdeploy's host shim for an Aether-V Hyper-V host (contract §6a).

.DESCRIPTION
    Installed beside Aether-V's scripts in "C:\Program Files\Aether-V" (see
    INSTALL.md). Per call it reads one JobRequest line on stdin and prints one
    answer line on stdout; with -Session it serves many requests, one JSON
    object a line, each in a fresh runspace.

    Its executable specification is `hvdeploy-simhost --flavor hvdeploy`
    (simhost/README.md in the hvdeploy repository): every rule below has a
    test there. What it adds to Main-NewProtocol.ps1:
      - agent.hello, vm.find and host.resources;
      - UTF-8 on the console both ways;
      - a journal of answers by idempotency key (a repeated key is answered
        from it, with no second effect);
      - vm.create refuses a VM name in use, stamps "hvdeploy:<job_id>" into
        the new VM's Notes, and adopts the VM its own stage made when the
        journal entry was lost;
      - OPERATION_ERROR with a known transient text becomes TRANSIENT or
        HOST_BUSY;
      - answers always carry status, message, data, code, logs, correlation_id.
    The operations themselves are Main-NewProtocol.ps1's.
#>
[CmdletBinding()]
param(
    [switch]$Session,
    # One request given as text instead of stdin: how -Session runs each request.
    [string]$RequestLine,
    [string]$AgentScript = (Join-Path $PSScriptRoot 'Main-NewProtocol.ps1'),
    [string]$JournalDir = 'C:\ProgramData\Aether-V\hvdeploy-journal',
    [string]$ResourcesDir = 'C:\ProgramData\Aether-V',
    # "--session" as well: the worker's default session command is its per-call one plus --session.
    [Parameter(ValueFromRemainingArguments = $true)][string[]]$Rest = @()
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
foreach ($a in $Rest) {
    if ($a -eq '--session') { $Session = $true }
    else { [Console]::Error.WriteLine("hvdeploy-agent: unknown argument '$a'"); exit 2 }
}
$Utf8 = [System.Text.UTF8Encoding]::new($false)
if (-not $PSBoundParameters.ContainsKey('RequestLine')) {
    # Not in a session's request runspace: setting the console's encoding there
    # would reset the stdin reader the session loop is reading.
    [Console]::InputEncoding = $Utf8
    [Console]::OutputEncoding = $Utf8
}
$OutputEncoding = $Utf8

$ShimName = 'hvdeploy-agent.ps1 1.1'
$Capabilities = @('idempotency', 'probe', 'session', 'output')
$PassThrough = @('vm.create', 'disk.create', 'nic.create', 'vm.initialize', 'vm.delete', 'noop-test')
$Journalled = @('vm.create', 'disk.create', 'nic.create', 'vm.initialize', 'vm.delete')
# The texts of transient conditions and the code each becomes (the simhost's
# simhost/aether.c holds the same table).
$TransientTexts = @(
    @{ Text = 'The process cannot access the file because it is being used by another process.'; Code = 'TRANSIENT' },
    @{ Text = 'The operation cannot be performed while the object is in its current state.'; Code = 'HOST_BUSY' },
    @{ Text = 'The WS-Management service cannot process the request.'; Code = 'HOST_BUSY' },
    @{ Text = 'Insufficient system resources exist to complete the requested service.'; Code = 'HOST_BUSY' },
    @{ Text = 'This operation returned because the timeout period expired.'; Code = 'TRANSIENT' }
)

function ConvertTo-AnswerLine([hashtable]$Answer) {
    # Every key present, as the simhost's hvdeploy flavour answers.
    foreach ($k in 'code', 'correlation_id') { if (-not $Answer.ContainsKey($k)) { $Answer[$k] = $null } }
    if (-not $Answer.ContainsKey('logs')) { $Answer['logs'] = @() }
    if (-not $Answer.ContainsKey('data') -or $null -eq $Answer['data']) { $Answer['data'] = @{} }
    return ($Answer | ConvertTo-Json -Depth 20 -Compress)
}

function New-Answer([string]$Status, [string]$Message, $Data, [string]$Code, $CorrelationId, [string[]]$Logs = @()) {
    return @{ status = $Status; message = $Message; data = $Data; code = $(if ($Code) { $Code } else { $null })
        logs = @($Logs); correlation_id = $CorrelationId }
}

function New-ErrorAnswer([string]$Message, [string]$Code, $CorrelationId, [string]$ErrorType = 'RuntimeException') {
    return New-Answer 'error' "Operation error: $Message" @{ error_type = $ErrorType } $Code $CorrelationId
}

# A file name for a key: its SHA-256 (keys hold ':' and anything else).
function Get-KeyFile([string]$Dir, [string]$Key, [string]$Suffix) {
    $sha = [System.Security.Cryptography.SHA256]::Create()
    $hex = [System.BitConverter]::ToString($sha.ComputeHash($Utf8.GetBytes($Key))).Replace('-', '')
    return Join-Path $Dir "$hex$Suffix"
}

# An exclusive lock held while the returned stream is open (waits for it).
function Lock-File([string]$Path) {
    while ($true) {
        try { return [System.IO.File]::Open($Path, 'OpenOrCreate', 'ReadWrite', 'None') }
        catch [System.IO.IOException] { Start-Sleep -Milliseconds 200 }
    }
}

function Read-Journal([string]$Key) {
    $file = Get-KeyFile $JournalDir $Key '.json'
    if (-not (Test-Path -LiteralPath $file -PathType Leaf)) { return $null }
    return (Get-Content -LiteralPath $file -Raw -Encoding utf8 | ConvertFrom-Json -AsHashtable)
}

function Write-Journal([string]$Key, [string]$Op, [string]$AnswerLine) {
    $file = Get-KeyFile $JournalDir $Key '.json'
    $tmp = "$file.tmp"
    $entry = @{ key = $Key; op = $Op; answer = $AnswerLine } | ConvertTo-Json -Compress
    [System.IO.File]::WriteAllText($tmp, $entry, $Utf8)
    Move-Item -LiteralPath $tmp -Destination $file -Force   # a rename: whole or not at all
}

function Get-VmByName([string]$Name) {
    # -eq, not Get-VM -Name: no wildcards, and case-insensitive like Hyper-V.
    return @(Get-VM | Where-Object { $_.Name -eq $Name })
}

function Get-NotesJobId($Vm) {
    if ($Vm.Notes -match '^hvdeploy:(\S+)') { return $Matches[1] }
    return $null
}

function Invoke-Hello($Request) {
    $data = @{ agent = $ShimName; capabilities = $Capabilities }
    return New-Answer 'success' "$ShimName ready" $data $null $Request['correlation_id'] @('Executing agent.hello operation')
}

function Invoke-VmFind($Request) {
    $name = $Request['resource_spec']['vm_name']
    if (-not $name) { return New-ErrorAnswer 'vm_name is required for vm.find' 'OPERATION_ERROR' $Request['correlation_id'] }
    $vms = @(foreach ($vm in (Get-VmByName $name)) {
            @{
                vm_id   = $vm.Id.ToString(); vm_name = $vm.Name; job_id = (Get-NotesJobId $vm); state = $vm.State.ToString()
                disks   = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object { @{ disk_id = $_.Id; disk_path = $_.Path } })
                nics    = @(Get-VMNetworkAdapter -VM $vm | ForEach-Object {
                        @{ nic_id = $_.Id; mac_address = $_.MacAddress; adapter_name = $_.Name } })
            }
        })
    $msg = "Found $($vms.Count) VM(s) named '$name'"
    return New-Answer 'success' $msg @{ vms = $vms } $null $Request['correlation_id'] @('Executing vm.find operation', $msg)
}

function Invoke-HostResources($Request) {
    $path = Join-Path $ResourcesDir 'hostresources.json'
    if (Test-Path -LiteralPath $path -PathType Leaf) {
        $doc = Get-Content -LiteralPath $path -Raw -Encoding utf8 | ConvertFrom-Json -AsHashtable
    }
    else {
        Import-Module -Name powershell-yaml -ErrorAction Stop | Out-Null
        $doc = ConvertFrom-Yaml -Yaml (Get-Content -LiteralPath (Join-Path $ResourcesDir 'hostresources.yaml') -Raw)
    }
    if (-not $doc.ContainsKey('golden_images')) {
        # The images are files: DiskImages\*.vhdx on the cluster volumes, as disk.create looks for them.
        $doc['golden_images'] = @(Get-ChildItem -Path 'C:\ClusterStorage' -Directory -ErrorAction SilentlyContinue |
                ForEach-Object { Join-Path $_.FullName 'DiskImages' } | Where-Object { Test-Path -LiteralPath $_ } |
                ForEach-Object { Get-ChildItem -LiteralPath $_ -Filter '*.vhdx' -File } |
                ForEach-Object { @{ name = $_.BaseName } })
    }
    $msg = "Host resources: $(@($doc['storage_classes']).Count) storage classes, $(@($doc['networks']).Count) networks, $(@($doc['golden_images']).Count) images"
    return New-Answer 'success' $msg $doc $null $Request['correlation_id'] @('Executing host.resources operation')
}

# Main-NewProtocol.ps1 on one request: its answer, its Write-Host lines to stderr.
function Invoke-AgentScript([string]$Line) {
    $answer = $null
    foreach ($item in ($Line | & $AgentScript *>&1)) {
        $text = "$item"
        if ($text.StartsWith('{')) {
            try { $parsed = $text | ConvertFrom-Json -AsHashtable } catch { $parsed = $null }
            if ($parsed -is [hashtable] -and $parsed.ContainsKey('status')) { $answer = $parsed; continue }
        }
        Write-Host $text   # per call this reaches stderr (below); in a session, an output line
    }
    if (-not $answer) { throw "Main-NewProtocol.ps1 printed no answer" }
    if ($answer['status'] -eq 'error' -and $answer['code'] -eq 'OPERATION_ERROR') {
        foreach ($t in $TransientTexts) {
            if ("$($answer['message'])".Contains($t.Text)) { $answer['code'] = $t.Code; break }
        }
    }
    return $answer
}

function Invoke-VmCreate($Request, [string]$Line) {
    $spec = $Request['resource_spec']; $meta = $Request['metadata']; $name = $spec['vm_name']
    $jobId = if ($meta) { $meta['job_id'] } else { $null }
    $key = if ($meta) { $meta['idempotency_key'] } else { $null }
    # One vm.create per name at a time, so that two jobs cannot both find the name free.
    $lock = Lock-File (Get-KeyFile $JournalDir "name:$("$name".ToLowerInvariant())" '.lock')
    try {
        $same = Get-VmByName $name
        if ($same.Count -gt 0) {
            $own = $same.Count -eq 1 -and $jobId -and (Get-NotesJobId $same[0]) -eq $jobId -and $key -eq "${jobId}:vm.create"
            if (-not $own) { return New-ErrorAnswer "A VM named '$name' already exists on this host" 'OPERATION_ERROR' $Request['correlation_id'] }
            $data = @{ vm_id = $same[0].Id.ToString(); vm_name = $same[0].Name; status = 'created' }
            return New-Answer 'success' "VM '$name' created successfully" $data $null $Request['correlation_id'] @("VM '$name' of job $jobId exists already: adopted")
        }
        $answer = Invoke-AgentScript $Line
        if ($answer['status'] -eq 'success' -and $jobId) {
            try { Set-VM -VM (Get-VM -Id $answer['data']['vm_id']) -Notes "hvdeploy:$jobId" }
            catch { [Console]::Error.WriteLine("hvdeploy-agent: cannot stamp the Notes of '$name': $_") }
        }
        return $answer
    }
    finally { $lock.Dispose() }
}

# One request line to one answer line.
function Invoke-Request([string]$Line) {
    try { $request = $Line | ConvertFrom-Json -AsHashtable }
    catch { return ConvertTo-AnswerLine (New-ErrorAnswer "Failed to parse JSON envelope: $_" 'OPERATION_ERROR' $null 'ArgumentException') }
    if ($request -isnot [hashtable]) { return ConvertTo-AnswerLine (New-ErrorAnswer 'Failed to parse JSON envelope: not a JSON object' 'OPERATION_ERROR' $null 'ArgumentException') }
    $op = $request['operation']; $corr = $request['correlation_id']
    if (-not $op) { return ConvertTo-AnswerLine (New-ErrorAnswer 'Job envelope missing required field: operation' 'OPERATION_ERROR' $corr) }
    if ($request['resource_spec'] -isnot [hashtable]) { return ConvertTo-AnswerLine (New-ErrorAnswer 'Job envelope missing required field: resource_spec' 'OPERATION_ERROR' $corr) }
    if ($op -eq 'agent.hello') { return ConvertTo-AnswerLine (Invoke-Hello $request) }
    if ($op -eq 'vm.find') { return ConvertTo-AnswerLine (Invoke-VmFind $request) }
    if ($op -eq 'host.resources') { return ConvertTo-AnswerLine (Invoke-HostResources $request) }
    if ($op -notin $PassThrough) { return ConvertTo-AnswerLine (New-ErrorAnswer "Unsupported operation: $op" 'UNSUPPORTED_OPERATION' $corr 'NotSupportedException') }
    $key = if ($request['metadata']) { $request['metadata']['idempotency_key'] } else { $null }
    $null = New-Item -ItemType Directory -Force -Path $JournalDir   # the journal and the lock files
    if (-not $key -or $op -notin $Journalled) {
        return ConvertTo-AnswerLine $(if ($op -eq 'vm.create') { Invoke-VmCreate $request $Line } else { Invoke-AgentScript $Line })
    }
    $lock = Lock-File (Get-KeyFile $JournalDir $key '.lock')   # a retry waits for the first call, then replays
    try {
        $stored = Read-Journal $key
        if ($stored) {
            if ($stored['op'] -ne $op) { return ConvertTo-AnswerLine (New-ErrorAnswer "Idempotency key '$key' was already used for operation $($stored['op'])" 'IDEMPOTENCY_KEY_REUSED' $corr) }
            return $stored['answer']
        }
        $answer = if ($op -eq 'vm.create') { Invoke-VmCreate $request $Line } else { Invoke-AgentScript $Line }
        $line = ConvertTo-AnswerLine $answer
        if ($answer['status'] -eq 'success') { Write-Journal $key $op $line }   # errors are not kept: a retry runs again
        return $line
    }
    finally { $lock.Dispose() }
}

function Write-Line([string]$Line) {
    [Console]::Out.Write($Line + "`n")
    [Console]::Out.Flush()
}

function Write-BadLine([string]$Message) {
    Write-Line (@{ request_id = $null; status = 'error'; message = "Operation error: $Message"; data = @{}; code = 'BAD_REQUEST' } | ConvertTo-Json -Compress)
}

# The answer line of a session request: request_id first, then the envelope.
function Join-RequestId($Id, [string]$AnswerLine) {
    $idText = ConvertTo-Json -InputObject $Id -Compress
    return '{"request_id":' + $idText + ',' + $AnswerLine.Substring(1)
}

# -Session: hello, then requests until EOF; each runs this script with
# -RequestLine in a fresh runspace (Main-NewProtocol.ps1 leaves global state).
function Start-Session {
    Write-Line (@{ hello = @{ agent = $ShimName; capabilities = $Capabilities } } | ConvertTo-Json -Depth 5 -Compress)
    $running = @{}   # request_id text -> @{ Id; PS; Handle; Output; Seen }
    $reader = [Console]::In
    $pending = $reader.ReadLineAsync()
    $eof = $false
    while (-not $eof -or $running.Count -gt 0) {
        if (-not $eof -and $pending.Wait(50)) {
            $line = $pending.Result
            if ($null -eq $line) { $eof = $true } else { $pending = $reader.ReadLineAsync() }
            if ($line -and $line.Trim()) {
                try { $msg = $line | ConvertFrom-Json -AsHashtable } catch { $msg = $null }
                if ($msg -isnot [hashtable]) { Write-BadLine "Failed to parse JSON line: $line" }
                elseif ($msg.ContainsKey('cancel') -and -not $msg.ContainsKey('operation')) {
                    $r = $running[(ConvertTo-Json -InputObject $msg['cancel'] -Compress)]
                    if ($r) { $r.Cancelled = $true; $null = $r.PS.BeginStop($null, $null) }
                }
                elseif (-not $msg.ContainsKey('request_id') -or ($msg['request_id'] -isnot [string] -and $msg['request_id'] -isnot [long] -and $msg['request_id'] -isnot [int])) {
                    Write-BadLine 'Request has no request_id (a string or an integer); it is ignored'
                }
                else {
                    $idText = ConvertTo-Json -InputObject $msg['request_id'] -Compress
                    if ($running.ContainsKey($idText)) { Write-BadLine "request_id $idText is already in flight; this line is ignored" }
                    else {
                        $rs = [System.Management.Automation.Runspaces.RunspaceFactory]::CreateRunspace()
                        $rs.Open()
                        $ps = [PowerShell]::Create()
                        $ps.Runspace = $rs
                        $null = $ps.AddCommand($PSCommandPath).AddParameter('RequestLine', $line)
                        $wantOutput = $msg['metadata'] -is [hashtable] -and $msg['metadata']['output'] -eq $true
                        $running[$idText] = @{ Id = $msg['request_id']; PS = $ps; Handle = $ps.BeginInvoke(); Seen = 0; Output = $wantOutput; Cancelled = $false }
                    }
                }
            }
        }
        foreach ($idText in @($running.Keys)) {
            $r = $running[$idText]
            $info = $r.PS.Streams.Information
            while ($r.Seen -lt $info.Count) {   # Write-Host lines, as they come
                if ($r.Output) { Write-Line (@{ request_id = $r.Id; output = "$($info[$r.Seen])"; stream = 'stdout' } | ConvertTo-Json -Compress) }
                $r.Seen = $r.Seen + 1
            }
            if (-not $r.Handle.IsCompleted) { continue }
            try { $answer = ($r.PS.EndInvoke($r.Handle) | Select-Object -Last 1) }
            catch { $answer = $null }
            if ($r.Cancelled -and -not $answer) {
                $answer = ConvertTo-AnswerLine (New-ErrorAnswer 'The pipeline has been stopped.' 'CANCELLED' $null 'PipelineStoppedException')
            }
            elseif (-not $answer) {
                # The shim itself failed (as an exit without an answer per call): TRANSIENT,
                # so the worker retries with the same key, which replays or adopts.
                $answer = ConvertTo-AnswerLine (New-ErrorAnswer "The request failed in its runspace: $($r.PS.Streams.Error | Select-Object -First 1)" 'TRANSIENT' $null)
            }
            Write-Line (Join-RequestId $r.Id "$answer")
            $r.PS.Runspace.Dispose()
            $r.PS.Dispose()
            $running.Remove($idText)
        }
    }
}

if ($Session) { Start-Session; exit 0 }
if ($PSBoundParameters.ContainsKey('RequestLine')) { Invoke-Request $RequestLine; exit 0 }
# Per call: the request on stdin; Write-Host lines of the agent script go to
# stderr so that stdout holds the answer only. A failure of the shim itself
# (no answer from the script, an unwritable journal) ends it with exit 1 and
# no answer, which the worker retries with the same key.
$in = [Console]::In.ReadToEnd()
$answerLine = & { Invoke-Request $in } 6>&1 | ForEach-Object {
    if ($_ -is [System.Management.Automation.InformationRecord]) { [Console]::Error.WriteLine("$_") } else { $_ }
}
Write-Line "$($answerLine | Select-Object -Last 1)"
exit 0
