// Translations (English, Spanish). t(key, vars) looks a key up in the current language and
// fills {placeholders}. A missing key falls back to English and is recorded in
// window.__i18nMissing, which the browser tests assert stays empty.
const STORAGE = 'relay.lang';
export const LANGUAGES = ['en', 'es'];

const en = {
  'lang.en': 'English', 'lang.es': 'Español',
  'header.language': 'Language', 'header.theme': 'Switch dark / light mode',
  'live.toggle': 'Auto-refresh', 'live.live': 'Live', 'live.connecting': 'Connecting…',
  'live.polling': 'Polling', 'live.off': 'Paused',
  'auth.title': 'API key', 'auth.key': 'API key (X-API-KEY)', 'auth.submit': 'Use this key',
  'auth.required': 'This server requires an API key. Enter the SECRET_KEY it was started with.',
  'auth.invalid': 'Invalid API key (401). Check the key and try again.',
  'auth.needed': 'API key needed', 'auth.enter': 'Enter API key',
  'auth.neededHelp': 'This server requires an API key: nothing can be shown or updated without it.',
  'common.loading': 'Loading…', 'common.actions': 'Actions', 'common.noResults': 'Nothing matches these filters.',
  'action.cancel': 'Cancel', 'action.close': 'Close', 'action.confirm': 'Confirm', 'action.create': 'Create',
  'action.delete': 'Delete', 'action.edit': 'Edit', 'action.move': 'Move', 'action.purge': 'Purge',
  'action.rename': 'Rename', 'action.save': 'Save',
  'error.invalidJson': '{field} is not valid JSON: {detail}',
  'status.all': 'All statuses', 'status.queued': 'Queued', 'status.processing': 'Processing', 'status.dead': 'Dead',
  'status.acknowledged': 'Acknowledged', 'status.archived': 'Archived',
  'queueType.standard': 'Standard', 'queueType.unlogged': 'Unlogged', 'queueType.partitioned': 'Partitioned',
  'interval.hourly': 'Hourly', 'interval.daily': 'Daily', 'interval.weekly': 'Weekly',
  'queues.title': 'Queues', 'queues.create': 'New queue', 'queues.name': 'Name', 'queues.type': 'Type',
  'queues.throughput': 'Throughput (5 min)', 'queues.rate': 'in {in}/min · done {out}/min',
  'queues.empty': 'No queues yet.', 'queues.filter': 'Filter by name', 'queues.nameHelp': 'Letters, digits, - and _; at most 64 characters.',
  'queues.ackTimeout': 'Ack timeout (s)', 'queues.maxAttempts': 'Max attempts', 'queues.retryDelay': 'Retry delay (s)',
  'queues.partitionInterval': 'Partition interval', 'queues.partitionHelp': 'Partitioned queues only, with a retention.',
  'queues.retention': 'Retention (e.g. 7 days)', 'queues.description': 'Description',
  'queues.editTitle': 'Edit queue {name}', 'queues.purgeTitle': 'Purge queue {name}',
  'queues.purgeMessage': 'Delete the messages of this status. The queue and its settings stay.',
  'queues.purgeStatus': 'Messages to delete', 'queues.renameTitle': 'Rename queue {name}', 'queues.newName': 'New name',
  'queues.deleteTitle': 'Delete queue {name}', 'queues.deleteMessage': 'The queue and all its messages will be deleted.',
  'queues.deleteNotEmpty': 'The queue still has {count} queued or processing messages. Tick "force" to delete it anyway.',
  'queues.force': 'Force (delete even if not empty)',
  'queue.notFound': 'Queue "{name}" does not exist.',
  'tab.main': 'Queued', 'tab.processing': 'Processing', 'tab.dead': 'Dead letter', 'tab.acknowledged': 'Acknowledged',
  'tab.archived': 'Archived', 'tab.activity': 'Activity', 'tab.anomalies': 'Anomalies', 'tab.consumers': 'Consumers',
  'messages.id': 'ID', 'messages.type': 'Type', 'messages.priority': 'Priority', 'messages.attempts': 'Attempts',
  'messages.created': 'Created', 'messages.payload': 'Payload', 'messages.consumer': 'Consumer',
  'messages.available': 'Available', 'messages.availableNow': 'now',
  'messages.leaseLeft': 'Lease left', 'messages.lastError': 'Last error', 'messages.acknowledged': 'Acknowledged at',
  'messages.status': 'Status', 'messages.size': 'Payload size',
  'messages.secondsLeft': '{seconds} s left', 'messages.expired': 'expired',
  'messages.empty': 'No messages here.', 'messages.select': 'Select message', 'messages.selectAll': 'Select all on this page',
  'messages.selected': '{count} selected', 'messages.moveSelected': 'Move selected',
  'messages.selectedOffPage': '{count} selected ({offPage} on other pages)',
  'messages.deleteSelected': 'Delete selected', 'messages.create': 'New message', 'messages.import': 'Import JSON',
  'messages.export': 'Export JSON', 'messages.importInvalid': 'The file is not valid JSON.',
  'messages.imported': 'Imported {count} messages',
  'messages.importPartial': 'Imported {count} messages; the rest, from message {start} on, was refused: {error}',
  'messages.createTitle': 'New message in {queue}', 'messages.editTitle': 'Edit message {id}',
  'messages.queueDefault': 'Empty: the queue\'s setting.', 'messages.delay': 'Delay (s)',
  'messages.moveTitle': 'Move {count} message(s)', 'messages.moveTo': 'Move to',
  'messages.errorReason': 'Reason (optional)', 'messages.errorReasonHelp': 'Stored as the message\'s last error.',
  'messages.deleteTitle': 'Delete {count} message(s)',
  'messages.deleteMessage': '{count} message(s) will be deleted permanently.',
  'messages.history': 'History', 'messages.historyTitle': 'Message {id}', 'messages.noHistory': 'No activity recorded.',
  'filters.title': 'Filters', 'filters.allTypes': 'All types', 'filters.any': 'Any', 'filters.minAttempts': 'Attempts ≥', 'filters.from': 'From',
  'filters.to': 'To', 'filters.search': 'Search', 'filters.searchPlaceholder': 'ID or payload text',
  'filters.clear': 'Clear filters', 'filters.sortBy': 'Sort by', 'filters.sortOrder': 'Order',
  'sort.timestamp': 'Time', 'sort.severity': 'Severity', 'sort.type': 'Type', 'sort.action': 'Action',
  'sort.asc': 'Oldest first', 'sort.desc': 'Newest first',
  'pager.prev': 'Previous', 'pager.next': 'Next', 'pager.info': 'Page {page} of {pages} · {total} total',
  'pager.infoAtLeast': 'Page {page} of {pages}+ · more than {total}',
  'pager.size': 'Rows per page', 'pager.perPage': '{size} / page',
  'activity.time': 'Time', 'activity.action': 'Action', 'activity.processingTime': 'Processing time',
  'activity.anomaly': 'Anomaly', 'activity.onlyAnomalies': 'Only anomalies', 'activity.summaryAll': 'All matching:',
  'activity.severity': 'Severity', 'activity.anomalyType': 'Anomaly type', 'activity.description': 'Description',
  'activity.total': 'Total',
  'severity.info': 'Info', 'severity.warning': 'Warning', 'severity.critical': 'Critical',
  'consumers.dequeued': 'Dequeued', 'consumers.acknowledged': 'Acknowledged', 'consumers.failed': 'Failed',
  'consumers.lastDequeue': 'Last dequeue', 'consumers.lastAck': 'Last ack',
  'consumers.note': 'Counters per consumer in this queue.',
  'activityAction.enqueue': 'Enqueue', 'activityAction.dequeue': 'Dequeue', 'activityAction.acknowledge': 'Acknowledge',
  'activityAction.nack': 'Nack', 'activityAction.move_to_dlq': 'To dead letter',
  'activityAction.timeout_requeue': 'Timeout, requeued', 'activityAction.timeout_to_dlq': 'Timeout, dead letter',
  'activityAction.touch': 'Lease extended', 'activityAction.move': 'Move', 'activityAction.delete': 'Delete',
  'activityAction.bulk_delete': 'Bulk delete', 'activityAction.clear_queue': 'Clear queue',
  'activityAction.clear_all_queues': 'Clear all queues', 'activityAction.create_queue': 'Create queue',
  'activityAction.update_queue': 'Update queue', 'activityAction.rename_queue': 'Rename queue',
  'activityAction.delete_queue': 'Delete queue', 'activityAction.purge_queue': 'Purge queue',
  'anomaly.flash_message': 'Flash message', 'anomaly.burst_dequeue': 'Burst dequeue',
  'anomaly.large_payload': 'Large payload', 'anomaly.long_processing': 'Long processing',
  'anomaly.lock_stolen': 'Lock stolen', 'anomaly.near_dlq': 'Near dead letter', 'anomaly.dlq_movement': 'Dead-lettered',
  'anomaly.zombie_message': 'Zombie message', 'anomaly.bulk_enqueue': 'Bulk enqueue',
  'anomaly.bulk_delete': 'Bulk delete', 'anomaly.bulk_move': 'Bulk move', 'anomaly.queue_cleared': 'Queue cleared',
};

const es = {
  'lang.en': 'English', 'lang.es': 'Español',
  'header.language': 'Idioma', 'header.theme': 'Cambiar modo oscuro / claro',
  'live.toggle': 'Actualización automática', 'live.live': 'En vivo', 'live.connecting': 'Conectando…',
  'live.polling': 'Sondeando', 'live.off': 'En pausa',
  'auth.title': 'Clave de API', 'auth.key': 'Clave de API (X-API-KEY)', 'auth.submit': 'Usar esta clave',
  'auth.required': 'Este servidor requiere una clave de API. Introduce la SECRET_KEY con la que se inició.',
  'auth.invalid': 'Clave de API no válida (401). Revisa la clave e inténtalo de nuevo.',
  'auth.needed': 'Falta la clave de API', 'auth.enter': 'Introducir la clave de API',
  'auth.neededHelp': 'Este servidor requiere una clave de API: sin ella no se puede mostrar ni actualizar nada.',
  'common.loading': 'Cargando…', 'common.actions': 'Acciones', 'common.noResults': 'Nada coincide con estos filtros.',
  'action.cancel': 'Cancelar', 'action.close': 'Cerrar', 'action.confirm': 'Confirmar', 'action.create': 'Crear',
  'action.delete': 'Eliminar', 'action.edit': 'Editar', 'action.move': 'Mover', 'action.purge': 'Vaciar',
  'action.rename': 'Renombrar', 'action.save': 'Guardar',
  'error.invalidJson': '{field} no es JSON válido: {detail}',
  'status.all': 'Todos los estados', 'status.queued': 'En cola', 'status.processing': 'En proceso',
  'status.dead': 'Muertos', 'status.acknowledged': 'Confirmados', 'status.archived': 'Archivados',
  'queueType.standard': 'Estándar', 'queueType.unlogged': 'Sin registro (unlogged)',
  'queueType.partitioned': 'Particionada',
  'interval.hourly': 'Cada hora', 'interval.daily': 'Diaria', 'interval.weekly': 'Semanal',
  'queues.title': 'Colas', 'queues.create': 'Nueva cola', 'queues.name': 'Nombre', 'queues.type': 'Tipo',
  'queues.throughput': 'Rendimiento (5 min)', 'queues.rate': 'entran {in}/min · hechos {out}/min',
  'queues.empty': 'Todavía no hay colas.', 'queues.filter': 'Filtrar por nombre', 'queues.nameHelp': 'Letras, dígitos, - y _; como máximo 64 caracteres.',
  'queues.ackTimeout': 'Tiempo de confirmación (s)', 'queues.maxAttempts': 'Intentos máximos',
  'queues.retryDelay': 'Espera entre reintentos (s)', 'queues.partitionInterval': 'Intervalo de partición',
  'queues.partitionHelp': 'Solo colas particionadas, con una retención.',
  'queues.retention': 'Retención (p. ej. 7 days)', 'queues.description': 'Descripción',
  'queues.editTitle': 'Editar la cola {name}', 'queues.purgeTitle': 'Vaciar la cola {name}',
  'queues.purgeMessage': 'Elimina los mensajes de este estado. La cola y su configuración se mantienen.',
  'queues.purgeStatus': 'Mensajes que eliminar', 'queues.renameTitle': 'Renombrar la cola {name}',
  'queues.newName': 'Nombre nuevo', 'queues.deleteTitle': 'Eliminar la cola {name}',
  'queues.deleteMessage': 'Se eliminarán la cola y todos sus mensajes.',
  'queues.deleteNotEmpty': 'La cola aún tiene {count} mensajes en cola o en proceso. Marca «forzar» para eliminarla igualmente.',
  'queues.force': 'Forzar (eliminar aunque no esté vacía)',
  'queue.notFound': 'La cola «{name}» no existe.',
  'tab.main': 'En cola', 'tab.processing': 'En proceso', 'tab.dead': 'Mensajes muertos', 'tab.acknowledged': 'Confirmados',
  'tab.archived': 'Archivados', 'tab.activity': 'Actividad', 'tab.anomalies': 'Anomalías', 'tab.consumers': 'Consumidores',
  'messages.id': 'ID', 'messages.type': 'Tipo', 'messages.priority': 'Prioridad', 'messages.attempts': 'Intentos',
  'messages.created': 'Creado', 'messages.payload': 'Contenido', 'messages.consumer': 'Consumidor',
  'messages.available': 'Disponible', 'messages.availableNow': 'ya',
  'messages.leaseLeft': 'Concesión restante', 'messages.lastError': 'Último error',
  'messages.acknowledged': 'Confirmado el', 'messages.status': 'Estado', 'messages.size': 'Tamaño del contenido',
  'messages.secondsLeft': 'quedan {seconds} s', 'messages.expired': 'caducada',
  'messages.empty': 'No hay mensajes aquí.', 'messages.select': 'Seleccionar mensaje',
  'messages.selectAll': 'Seleccionar todos en esta página', 'messages.selected': '{count} seleccionados',
  'messages.selectedOffPage': '{count} seleccionados ({offPage} en otras páginas)',
  'messages.moveSelected': 'Mover seleccionados', 'messages.deleteSelected': 'Eliminar seleccionados',
  'messages.create': 'Nuevo mensaje', 'messages.import': 'Importar JSON', 'messages.export': 'Exportar JSON',
  'messages.importInvalid': 'El archivo no es JSON válido.',
  'messages.imported': '{count} mensajes importados',
  'messages.importPartial': '{count} mensajes importados; el resto, desde el mensaje {start}, fue rechazado: {error}',
  'messages.createTitle': 'Nuevo mensaje en {queue}', 'messages.editTitle': 'Editar el mensaje {id}',
  'messages.queueDefault': 'Vacío: el valor de la cola.', 'messages.delay': 'Retraso (s)',
  'messages.moveTitle': 'Mover {count} mensaje(s)', 'messages.moveTo': 'Mover a',
  'messages.errorReason': 'Motivo (opcional)', 'messages.errorReasonHelp': 'Se guarda como último error del mensaje.',
  'messages.deleteTitle': 'Eliminar {count} mensaje(s)',
  'messages.deleteMessage': 'Se eliminarán {count} mensaje(s) de forma permanente.',
  'messages.history': 'Historial', 'messages.historyTitle': 'Mensaje {id}',
  'messages.noHistory': 'No hay actividad registrada.',
  'filters.title': 'Filtros', 'filters.allTypes': 'Todos los tipos', 'filters.any': 'Cualquiera', 'filters.minAttempts': 'Intentos ≥',
  'filters.from': 'Desde', 'filters.to': 'Hasta', 'filters.search': 'Buscar',
  'filters.searchPlaceholder': 'ID o texto del contenido', 'filters.clear': 'Quitar filtros',
  'filters.sortBy': 'Ordenar por', 'filters.sortOrder': 'Orden',
  'sort.timestamp': 'Hora', 'sort.severity': 'Gravedad', 'sort.type': 'Tipo', 'sort.action': 'Acción',
  'sort.asc': 'Más antiguos primero', 'sort.desc': 'Más recientes primero',
  'pager.prev': 'Anterior', 'pager.next': 'Siguiente', 'pager.info': 'Página {page} de {pages} · {total} en total',
  'pager.infoAtLeast': 'Página {page} de {pages}+ · más de {total}',
  'pager.size': 'Filas por página', 'pager.perPage': '{size} / página',
  'activity.time': 'Hora', 'activity.action': 'Acción', 'activity.processingTime': 'Tiempo de proceso',
  'activity.anomaly': 'Anomalía', 'activity.onlyAnomalies': 'Solo anomalías', 'activity.summaryAll': 'Todas las coincidencias:',
  'activity.severity': 'Gravedad', 'activity.anomalyType': 'Tipo de anomalía', 'activity.description': 'Descripción',
  'activity.total': 'Total',
  'severity.info': 'Información', 'severity.warning': 'Aviso', 'severity.critical': 'Crítica',
  'consumers.dequeued': 'Recibidos', 'consumers.acknowledged': 'Confirmados', 'consumers.failed': 'Fallidos',
  'consumers.lastDequeue': 'Última recepción', 'consumers.lastAck': 'Última confirmación',
  'consumers.note': 'Contadores por consumidor en esta cola.',
  'activityAction.enqueue': 'Encolado', 'activityAction.dequeue': 'Entregado', 'activityAction.acknowledge': 'Confirmado',
  'activityAction.nack': 'Rechazado', 'activityAction.move_to_dlq': 'A mensajes muertos',
  'activityAction.timeout_requeue': 'Caducado, reencolado', 'activityAction.timeout_to_dlq': 'Caducado, a muertos',
  'activityAction.touch': 'Concesión extendida', 'activityAction.move': 'Movido', 'activityAction.delete': 'Eliminado',
  'activityAction.bulk_delete': 'Eliminación masiva', 'activityAction.clear_queue': 'Cola limpiada',
  'activityAction.clear_all_queues': 'Todas las colas limpiadas', 'activityAction.create_queue': 'Cola creada',
  'activityAction.update_queue': 'Cola modificada', 'activityAction.rename_queue': 'Cola renombrada',
  'activityAction.delete_queue': 'Cola eliminada', 'activityAction.purge_queue': 'Cola vaciada',
  'anomaly.flash_message': 'Mensaje relámpago', 'anomaly.burst_dequeue': 'Ráfaga de entregas',
  'anomaly.large_payload': 'Contenido grande', 'anomaly.long_processing': 'Proceso largo',
  'anomaly.lock_stolen': 'Bloqueo robado', 'anomaly.near_dlq': 'Casi muerto', 'anomaly.dlq_movement': 'Pasado a muertos',
  'anomaly.zombie_message': 'Mensaje zombi', 'anomaly.bulk_enqueue': 'Encolado masivo',
  'anomaly.bulk_delete': 'Eliminación masiva', 'anomaly.bulk_move': 'Movimiento masivo',
  'anomaly.queue_cleared': 'Cola limpiada',
};

export const DICTIONARIES = { en, es };
window.__i18nMissing = window.__i18nMissing || [];

function initialLang() {
  const stored = localStorage.getItem(STORAGE);
  if (LANGUAGES.includes(stored)) return stored;
  return (navigator.language || 'en').toLowerCase().startsWith('es') ? 'es' : 'en';
}

let lang = initialLang();

export function getLang() {
  return lang;
}

export function setLang(next) {
  lang = LANGUAGES.includes(next) ? next : 'en';
  localStorage.setItem(STORAGE, lang);
  document.documentElement.lang = lang;
}

/** Translate `key`, replacing {name} placeholders from `vars`. */
export function t(key, vars = {}) {
  let text = DICTIONARIES[lang][key];
  if (text === undefined) {
    window.__i18nMissing.push(`${lang}:${key}`);
    text = en[key] ?? key;
  }
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in vars ? String(vars[name]) : match));
}
